//! The commands besides `serve`: `keys generate`, `send`, `import`, `sites`, `api-keys`
//! and `audit`. Each write is recorded in the audit log as made by the command line.

use super::config::{
    AddSiteArgs, AuditArgs, CreateKeyArgs, ImportArgs, ImportKeyArgs, ListArgs, ListSitesArgs, RemoveSiteArgs, RevokeKeyArgs, SendArgs,
    SiteNameArgs,
};
use super::startup::build_core;
use super::startup::shutdown_signal;
use crate::domain::base64url;
use crate::domain::BroadcastStatus;
use crate::domain::NotificationRequest;
use clarion_core::access::{self, Caller};
use clarion_core::audit::{self, Action, Written};
use clarion_core::broadcasts;
use clarion_core::keyring::{self, KeyInfo};
use clarion_core::sites::{self, NewSite, SiteView};
use clarion_core::{Clarion, CoreError};
use clarion_push::vapid::VapidKeyMaterial;
use indicatif::{ProgressBar, ProgressStyle};
use tokio_util::sync::CancellationToken;

/// `clarion keys generate`.
pub fn keys_generate() {
    let key = VapidKeyMaterial::generate();
    println!("public key (base64url, 65 bytes):  {}", base64url::encode(&key.public_key()));
    println!("private key (base64url, 32 bytes): {}", key.private_raw_base64url());
    println!();
    println!("private key (PEM, PKCS#8):");
    print!("{}", key.to_pkcs8_pem());
}

/// `clarion send`: queues a broadcast (to everyone, or its `--topic`s and `--user`s),
/// sends it from this process with a progress bar, and prints the summary. With `--at`
/// it is scheduled instead, and a running `clarion serve` sends it then.
pub async fn send(args: SendArgs) -> anyhow::Result<()> {
    let core = build_core(&args.site).await?;
    let owner = broadcasts::worker_name("cli");
    let scheduled = args.at.is_some();
    let request = NotificationRequest {
        title: args.title,
        body: args.body,
        url: args.url,
        ttl: args.ttl,
        topics: (!args.topics.is_empty()).then_some(args.topics),
        users: (!args.users.is_empty()).then_some(args.users),
        send_at: args.at,
        ..Default::default()
    };
    let lease_owner = (!scheduled).then_some(owner.as_str());
    let site = core.sites.get(&args.to_site).map_err(failed)?;
    let audience = broadcasts::audience_known_now(&core, &site, &request).await.map_err(failed)?;
    let queued = broadcasts::queue_broadcast(&core, &site, request, lease_owner).await.map_err(failed)?;
    audited(&core, &site.name, Action::NotificationCreate, queued.id.to_string(), audience).await?;
    if let Some(warning) = &queued.warning {
        eprintln!("warning: {warning}");
    }
    if scheduled {
        let status = broadcasts::broadcast_status(&core, &site, queued.id).await.map_err(|e| anyhow::anyhow!(e.public_message()))?;
        if args.json {
            println!("{}", serde_json::to_string(&status)?);
        } else {
            println!(
                "notification {} is scheduled for {}; a running `clarion serve` sends it then",
                status.id,
                status.send_at.as_deref().unwrap_or("?")
            );
        }
        return Ok(());
    }
    let bar = if args.json { ProgressBar::hidden() } else { ProgressBar::new(0) };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} {per_sec} eta {eta} {msg}")
            .expect("valid template"),
    );
    // Ctrl-C or SIGTERM stops sending and hands the broadcast back: `clarion serve`
    // (or the next `clarion send`) resumes it from the last commit.
    let stop = CancellationToken::new();
    let interrupt = stop.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        interrupt.cancel();
    });
    // The drive runs as a task on the runtime's workers, as `clarion serve`'s does, not
    // on the main thread: the wake-ups from its database and network futures then reach
    // a worker that is often running already, rather than unparking one more thread.
    let drive = tokio::spawn({
        let (core, bar, id, site) = (core.clone(), bar.clone(), queued.id, site.clone());
        async move {
            let show = |status: &BroadcastStatus| {
                bar.set_length(status.total.max(0) as u64);
                bar.set_position(status.settled().max(0) as u64);
                bar.set_message(format!("delivered {} failed {} removed {}", status.delivered, status.failed, status.removed));
            };
            // Start it, then send its ranges until none is left to claim; instances of
            // `clarion serve` on the same database may send some of them meanwhile.
            loop {
                if stop.is_cancelled() {
                    bar.finish_and_clear();
                    anyhow::bail!("interrupted: notification {id} is handed back; a running `clarion serve` resumes it");
                }
                let worked = broadcasts::work_once(&core, &owner, &stop, Some(id), show).await?;
                let status = broadcasts::broadcast_status(&core, &site, id).await.map_err(|e| anyhow::anyhow!(e.public_message()))?;
                show(&status);
                if status.is_done() {
                    return Ok(status);
                }
                if !worked {
                    // The ranges left are held by other instances: wait for them to finish.
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
            }
        }
    });
    let status = drive.await.map_err(|e| anyhow::anyhow!("the send failed: {e}"))??;
    bar.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string(&status)?);
    } else {
        println!(
            "notification {}: {} subscriptions, {} delivered, {} failed, {} removed",
            status.id, status.total, status.delivered, status.failed, status.removed
        );
        for (reason, count) in &status.failures {
            println!("  failed ({reason}): {count}");
        }
    }
    Ok(())
}

/// `clarion import FILE`: stores subscriptions from JSON lines and prints a JSON report.
pub async fn import(args: ImportArgs) -> anyhow::Result<()> {
    let core = build_core(&args.site).await?;
    let site = core.sites.get(&args.to_site).map_err(failed)?;
    let report = if args.file.as_os_str() == "-" {
        clarion_core::subscriptions::import(&core, &site, std::io::BufReader::new(std::io::stdin()), args.replace_keys).await
    } else {
        let file = std::fs::File::open(&args.file).map_err(|e| anyhow::anyhow!("Failed to open {}: {e}", args.file.display()))?;
        clarion_core::subscriptions::import(&core, &site, std::io::BufReader::new(file), args.replace_keys).await
    }
    .map_err(failed)?;
    audited(&core, &site.name, Action::SubscriptionsImport, args.file.display().to_string(), Some(report.stored as i64)).await?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// Prints keys as a table, or as `{"keys": [...]}` with `--json`.
fn print_keys(keys: &[KeyInfo], json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(&serde_json::json!({ "keys": keys }))?);
        return Ok(());
    }
    println!("{:>4}  {:<8}  {:>13}  {:<25}  public key", "id", "state", "subscriptions", "created");
    for key in keys {
        let state = if key.current { "current" } else { "older" };
        println!("{:>4}  {:<8}  {:>13}  {:<25}  {}", key.id, state, key.subscriptions, key.created_at, key.public_key);
    }
    Ok(())
}

/// Prints sites as a table, or as JSON with `json`.
fn print_sites(sites: &[SiteView]) {
    println!("{:<24}  {:>13}  {:<32}  origins", "site", "subscriptions", "subject");
    for site in sites {
        println!("{:<24}  {:>13}  {:<32}  {}", site.name, site.subscriptions, site.vapid_subject, site.origins.join(", "));
    }
}

/// `clarion sites add NAME`: a new site with a fresh VAPID key.
pub async fn site_add(args: AddSiteArgs) -> anyhow::Result<()> {
    let core = build_core(&args.site).await?;
    let new = NewSite {
        name: args.name,
        origins: args.origins,
        vapid_subject: args.subject,
        identity_secret: None,
        max_subscriptions: args.max_subscriptions,
        max_subscriptions_per_client: args.max_subscriptions_per_client,
    };
    let site = sites::create_site(&core, &new).await.map_err(failed)?;
    audited(&core, &site.name, Action::SiteCreate, site.name.clone(), None).await?;
    if args.json {
        println!("{}", serde_json::to_string(&site)?);
    } else {
        println!("site {} created; its VAPID public key: {}", site.name, site.vapid_public_key);
        println!("its pages connect with {{ site: {:?} }}; its REST paths are /api/v1/sites/{}/…", site.name, site.name);
    }
    Ok(())
}

/// `clarion sites list`.
pub async fn site_list(args: ListSitesArgs) -> anyhow::Result<()> {
    let core = build_core(&args.site).await?;
    let sites = sites::list_sites(&core).await.map_err(failed)?;
    if args.json {
        println!("{}", serde_json::to_string(&serde_json::json!({ "sites": sites }))?);
    } else {
        print_sites(&sites);
    }
    Ok(())
}

/// `clarion sites remove NAME [--purge]`.
pub async fn site_remove(args: RemoveSiteArgs) -> anyhow::Result<()> {
    let core = build_core(&args.site).await?;
    let removed = sites::remove_site(&core, &args.name, args.purge).await.map_err(failed)?;
    audited(&core, &args.name, Action::SiteDelete, args.name.clone(), (removed > 0).then_some(removed)).await?;
    println!("site {} removed, with {removed} subscriptions", args.name);
    Ok(())
}

/// `clarion sites show NAME`: the site and its VAPID keys (`--json`: the site with its
/// `keys`).
pub async fn site_show(args: SiteNameArgs) -> anyhow::Result<()> {
    let core = build_core(&args.site).await?;
    let site = sites::show_site(&core, &args.name).await.map_err(failed)?;
    let keys = keyring::list_keys(&core, &args.name).await.map_err(failed)?;
    if args.json {
        let mut shown = serde_json::to_value(&site)?;
        shown["keys"] = serde_json::to_value(&keys)?;
        println!("{}", serde_json::to_string(&shown)?);
        return Ok(());
    }
    print_sites(std::slice::from_ref(&site));
    println!();
    print_keys(&keys, false)
}

/// `clarion sites rotate-key NAME`: a fresh current key; prints the site's keys after.
pub async fn site_rotate_key(args: SiteNameArgs) -> anyhow::Result<()> {
    let core = build_core(&args.site).await?;
    let key = keyring::rotate_key(&core, &args.name).await.map_err(failed)?;
    audited(&core, &args.name, Action::VapidKeyRotate, key.id.to_string(), None).await?;
    if args.json {
        println!("{}", serde_json::to_string(&key)?);
        return Ok(());
    }
    println!("site {}: key {} is now current; the older keys keep signing for their subscriptions", args.name, key.id);
    let keys = keyring::list_keys(&core, &args.name).await.map_err(|e| anyhow::anyhow!(e.public_message()))?;
    print_keys(&keys, false)
}

/// `clarion sites import-key NAME FILE`: another sender's key becomes the current one.
pub async fn site_import_key(args: ImportKeyArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.file).map_err(|e| anyhow::anyhow!("Failed to read {}: {e}", args.file.display()))?;
    let material =
        if text.contains("-----BEGIN") { VapidKeyMaterial::from_pem(&text)? } else { VapidKeyMaterial::from_raw_base64url(text.trim())? };
    let core = build_core(&args.site).await?;
    let key = keyring::import_key(&core, &args.name, &material).await.map_err(failed)?;
    audited(&core, &args.name, Action::VapidKeyImport, key.id.to_string(), None).await?;
    if args.json {
        println!("{}", serde_json::to_string(&key)?);
    } else {
        println!("site {}: imported key {} is now current ({})", args.name, key.id, key.public_key);
    }
    Ok(())
}

/// A core error as the command line reports it.
fn failed(e: CoreError) -> anyhow::Error {
    anyhow::anyhow!(e.public_message())
}

/// Records a write made from the command line.
async fn audited(core: &Clarion, site: &str, action: Action, target: String, audience: Option<i64>) -> anyhow::Result<()> {
    let written = Written { caller: &Caller::CommandLine, site, action, target, audience, client: "cli".into() };
    audit::record(core, written).await.map_err(failed)
}

/// `clarion api-keys create`: prints the key with its secret, this once.
pub async fn api_key_create(args: CreateKeyArgs) -> anyhow::Result<()> {
    let mut scopes = Vec::new();
    for name in &args.scopes {
        scopes.push(
            crate::domain::Scope::parse(name).ok_or_else(|| anyhow::anyhow!("--scope {name:?}: one of read, send, audience, admin"))?,
        );
    }
    let core = build_core(&args.data).await?;
    let request = crate::domain::NewApiKey { name: args.name, site: args.site, scopes, expires_at: args.expires_at };
    let known = |site: &str| core.sites.exists(site);
    let created = access::create_api_key(&core, &request, known).await.map_err(failed)?;
    let (site, target) = access::audit_subject(created.id, &created.name, created.site.as_deref());
    audited(&core, &site, Action::ApiKeyCreate, target, None).await?;
    if args.json {
        println!("{}", serde_json::to_string(&created)?);
    } else {
        println!("API key {} ({}) created. Its secret, shown only now:", created.id, created.name);
        println!("{}", created.secret);
    }
    Ok(())
}

/// `clarion api-keys list`.
pub async fn api_key_list(args: ListArgs) -> anyhow::Result<()> {
    let core = build_core(&args.data).await?;
    let keys = access::list_api_keys(&core).await.map_err(failed)?;
    if args.json {
        println!("{}", serde_json::to_string(&serde_json::json!({ "api_keys": keys }))?);
        return Ok(());
    }
    println!("{:>4}  {:<24}  {:<12}  {:<28}  {:<25}  last used", "id", "name", "site", "scopes", "created");
    for key in keys {
        let scopes = key.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",");
        let site = key.site.as_deref().unwrap_or("(all)");
        let used = key.last_used_at.as_deref().unwrap_or("never");
        println!("{:>4}  {:<24}  {:<12}  {:<28}  {:<25}  {used}", key.id, key.name, site, scopes, key.created_at);
    }
    Ok(())
}

/// `clarion api-keys revoke ID`.
pub async fn api_key_revoke(args: RevokeKeyArgs) -> anyhow::Result<()> {
    let core = build_core(&args.data).await?;
    let revoked = access::revoke_api_key(&core, args.id).await.map_err(failed)?;
    let (site, target) = access::audit_subject(revoked.id, &revoked.name, revoked.site.as_deref());
    audited(&core, &site, Action::ApiKeyRevoke, target, None).await?;
    println!("API key {} ({}) revoked", revoked.id, revoked.name);
    Ok(())
}

/// `clarion audit`: the log, oldest first.
pub async fn audit(args: AuditArgs) -> anyhow::Result<()> {
    let core = build_core(&args.data).await?;
    let (entries, next) = audit::list(&core, args.site.as_deref(), args.after, Some(args.limit)).await.map_err(failed)?;
    for entry in &entries {
        if args.json {
            println!("{}", serde_json::to_string(entry)?);
        } else {
            let audience = entry.audience.map(|n| format!(" audience={n}")).unwrap_or_default();
            println!(
                "{:>6}  {}  {:<10}  {:<22}  {}{audience}  by {} from {}",
                entry.id, entry.at, entry.site, entry.action, entry.target, entry.key_name, entry.client
            );
        }
    }
    if let (Some(next), false) = (next, args.json) {
        println!("(more: --after {next})");
    }
    Ok(())
}
