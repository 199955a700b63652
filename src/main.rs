//! The `clarion` binary: parse the command line, set up logging, run the command.

use clap::Parser;
use clarion::server::config::{ApiKeysCommand, Cli, Command, KeysCommand, SitesCommand};
use clarion::server::{cli, startup::Application, telemetry};
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let args = Cli::parse();
    telemetry::init();
    let result = match args.command.unwrap_or(Command::Serve(args.serve)) {
        Command::Serve(serve) => match Application::build(serve).await {
            Ok(app) => app.run_until_stopped().await,
            Err(e) => Err(e),
        },
        Command::PushService(push) => clarion_push_service::run(push.into()).await,
        Command::Keys { command: KeysCommand::Generate } => {
            cli::keys_generate();
            Ok(())
        }
        Command::Send(send) => cli::send(send).await,
        Command::Import(import) => cli::import(import).await,
        Command::Sites { command: SitesCommand::Add(args) } => cli::site_add(args).await,
        Command::Sites { command: SitesCommand::List(args) } => cli::site_list(args).await,
        Command::Sites { command: SitesCommand::Remove(args) } => cli::site_remove(args).await,
        Command::Sites { command: SitesCommand::Show(args) } => cli::site_show(args).await,
        Command::Sites { command: SitesCommand::RotateKey(args) } => cli::site_rotate_key(args).await,
        Command::Sites { command: SitesCommand::ImportKey(args) } => cli::site_import_key(args).await,
        Command::ApiKeys { command: ApiKeysCommand::Create(args) } => cli::api_key_create(args).await,
        Command::ApiKeys { command: ApiKeysCommand::List(args) } => cli::api_key_list(args).await,
        Command::ApiKeys { command: ApiKeysCommand::Revoke(args) } => cli::api_key_revoke(args).await,
        Command::Audit(args) => cli::audit(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
