//! A peer in the send benchmark (`bench/run.py`): the `web-push` crate 0.11, used as its
//! documentation shows. The VAPID key is read once into a `PartialVapidSignatureBuilder`;
//! then, per subscription, a signature (the crate signs a JWT for every message) and a
//! message are built and sent with its hyper client, 64 in flight.
//!
//! ```text
//! web_push_peer SUBSCRIPTIONS.jsonl VAPID_PRIVATE_PEM_FILE SUBJECT PAYLOAD
//! ```
//!
//! prints `{"pushes", "ok", "failed", "seconds"}`. The crate's TLS is OpenSSL's, so the
//! benchmark's CA reaches it through `SSL_CERT_FILE`. Built by `./setup.sh bench`
//! (`cargo build --release --features ssr --example web_push_peer`).

use futures::stream::{self, StreamExt};
use std::time::Instant;
use web_push::{
    ContentEncoding, HyperWebPushClient, SubscriptionInfo, VapidSignatureBuilder, WebPushClient, WebPushError, WebPushMessageBuilder,
};

const IN_FLIGHT: usize = 64;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [subscriptions, pem, subject, payload] = &args[..] else {
        anyhow::bail!("usage: web_push_peer SUBSCRIPTIONS.jsonl VAPID_PRIVATE_PEM_FILE SUBJECT PAYLOAD");
    };
    let subscriptions: Vec<SubscriptionInfo> = std::fs::read_to_string(subscriptions)?
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let signer = VapidSignatureBuilder::from_pem_no_sub(std::fs::File::open(pem)?)?;
    let client = HyperWebPushClient::new();

    let send = |subscription: &SubscriptionInfo| {
        let (signer, client) = (signer.clone(), &client);
        let subscription = subscription.clone();
        async move {
            let mut signature = signer.add_sub_info(&subscription);
            signature.add_claim("sub", subject.as_str());
            let mut message = WebPushMessageBuilder::new(&subscription);
            message.set_payload(ContentEncoding::Aes128Gcm, payload.as_bytes());
            message.set_ttl(60);
            message.set_vapid_signature(signature.build()?);
            client.send(message.build()?).await?;
            Ok::<_, WebPushError>(())
        }
    };
    let started = Instant::now();
    let outcomes: Vec<_> = stream::iter(&subscriptions).map(send).buffer_unordered(IN_FLIGHT).collect().await;
    let seconds = started.elapsed().as_secs_f64();
    let failures: Vec<_> = outcomes.iter().filter_map(|outcome| outcome.as_ref().err()).collect();
    for failure in failures.iter().take(3) {
        eprintln!("{failure}");
    }
    let ok = outcomes.len() - failures.len();
    println!("{}", serde_json::json!({ "pushes": subscriptions.len(), "ok": ok, "failed": failures.len(), "seconds": seconds }));
    Ok(())
}
