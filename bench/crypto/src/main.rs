//! What one web push message costs in P-256 work, per library: a fresh key pair, its
//! public key exported, and ECDH with the subscriber's key (parsed once, as Clarion
//! stores validated keys). HKDF and AES-GCM on ~150 bytes are a small fraction of this.

use std::time::Instant;

const ROUNDS: u32 = 20_000;

fn report(name: &str, mut op: impl FnMut()) {
    for _ in 0..500 {
        op();
    }
    let started = Instant::now();
    for _ in 0..ROUNDS {
        op();
    }
    let per = started.elapsed() / ROUNDS;
    println!("{name:<14} {:>8.1} µs/message {:>8.0} messages/s per core", per.as_nanos() as f64 / 1000.0, 1e9 / per.as_nanos() as f64);
}

fn main() {
    // A subscriber key (uncompressed point).
    let subscriber = p256::SecretKey::random(&mut rand_core::OsRng);
    let peer = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&subscriber.public_key(), false).as_bytes().to_vec();

    let rng = ring::rand::SystemRandom::new();
    report("ring", || {
        let key = ring::agreement::EphemeralPrivateKey::generate(&ring::agreement::ECDH_P256, &rng).unwrap();
        let public = key.compute_public_key().unwrap();
        let secret =
            ring::agreement::agree_ephemeral(key, &ring::agreement::UnparsedPublicKey::new(&ring::agreement::ECDH_P256, &peer), |s| s[0])
                .unwrap();
        std::hint::black_box((public.as_ref()[0], secret));
    });

    report("aws-lc-rs", || {
        use aws_lc_rs::agreement;
        let key = agreement::EphemeralPrivateKey::generate(&agreement::ECDH_P256, &aws_lc_rs::rand::SystemRandom::new()).unwrap();
        let public = key.compute_public_key().unwrap();
        let secret =
            agreement::agree_ephemeral(key, agreement::UnparsedPublicKey::new(&agreement::ECDH_P256, &peer), (), |s| Ok(s[0])).unwrap();
        std::hint::black_box((public.as_ref()[0], secret));
    });

    {
        use openssl::bn::BigNumContext;
        use openssl::derive::Deriver;
        use openssl::ec::{EcGroup, EcKey, EcPoint, PointConversionForm};
        use openssl::nid::Nid;
        use openssl::pkey::PKey;
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        let mut ctx = BigNumContext::new().unwrap();
        let point = EcPoint::from_bytes(&group, &peer, &mut ctx).unwrap();
        let peer_key = PKey::from_ec_key(EcKey::from_public_key(&group, &point).unwrap()).unwrap();
        report("openssl", || {
            let key = EcKey::generate(&group).unwrap();
            let public = key.public_key().to_bytes(&group, PointConversionForm::UNCOMPRESSED, &mut ctx).unwrap();
            let pkey = PKey::from_ec_key(key).unwrap();
            let mut deriver = Deriver::new(&pkey).unwrap();
            deriver.set_peer(&peer_key).unwrap();
            let secret = deriver.derive_to_vec().unwrap();
            std::hint::black_box((public[0], secret[0]));
        });
    }

    let peer_key = p256::PublicKey::from_sec1_bytes(&peer).unwrap();
    report("p256 (Rust)", || {
        let secret = p256::ecdh::EphemeralSecret::random(&mut rand_core::OsRng);
        let public = p256::EncodedPoint::from(secret.public_key());
        let shared = secret.diffie_hellman(&peer_key);
        std::hint::black_box((public.as_bytes()[0], shared.raw_secret_bytes()[0]));
    });
}
