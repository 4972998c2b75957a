//! The SSH server `git push` talks to (russh).
//!
//! Public-key authentication only: the key's fingerprint is resolved to a
//! user by the controller. An exec request must be `git-receive-pack` or
//! `git-upload-pack` on `<app>.git`, and the user must be allowed on the app,
//! before any git process starts. git runs directly (never through a shell)
//! on the app's bare repository; one push per app runs at a time.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use russh::keys::HashAlg;
use russh::server::{Auth, ChannelOpenHandle, Handler, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, ChannelMsg};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::command::{self, GitService};
use crate::controller::{ControllerClient, ControllerError};
use crate::hook::{PushContext, Pushes, SOCKET_ENV, TOKEN_ENV};
use crate::repo::Repos;
use crate::ssh_listener::PendingLogin;

/// What every connection shares.
pub(crate) struct SshState {
    pub(crate) controller: ControllerClient,
    pub(crate) repos: Repos,
    pub(crate) pushes: Pushes,
    pub(crate) socket: PathBuf,
    /// Apps with a push in progress.
    pub(crate) pushing: Mutex<HashSet<String>>,
}

/// One client connection.
pub(crate) struct Connection {
    state: Arc<SshState>,
    peer: SocketAddr,
    /// Until the client logs in: what to tell when it does.
    login: Option<PendingLogin>,
    /// The authenticated user.
    user: Option<String>,
    /// Session channels not yet running a command.
    channels: HashMap<ChannelId, Channel<Msg>>,
    /// `GIT_PROTOCOL` sent by the client (protocol v2 negotiation).
    git_protocol: Option<String>,
}

impl Connection {
    pub(crate) fn new(state: Arc<SshState>, peer: SocketAddr, login: PendingLogin) -> Connection {
        Connection {
            state,
            peer,
            login: Some(login),
            user: None,
            channels: HashMap::new(),
            git_protocol: None,
        }
    }

    async fn user_of(&self, key: &russh::keys::PublicKey) -> Option<String> {
        let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
        match self.state.controller.lookup_key(&fingerprint).await {
            Ok(user) => Some(user),
            Err(ControllerError::NotFound(_)) => None,
            Err(err) => {
                tracing::warn!(error = %err, "cannot check an SSH key with the controller");
                None
            }
        }
    }
}

impl Handler for Connection {
    type Error = russh::Error;

    async fn auth_publickey_offered(
        &mut self,
        _: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        // Spare the client a signature for keys nobody registered.
        Ok(if self.user_of(offer.public_key).await.is_some() {
            Auth::Accept
        } else {
            Auth::reject()
        })
    }

    async fn auth_publickey(&mut self, _: &str, key: VerifiedPublicKey<'_>) -> Result<Auth, Self::Error> {
        match self.user_of(key.public_key).await {
            Some(user) => {
                tracing::debug!(%user, peer = %self.peer, "SSH key accepted");
                self.user = Some(user);
                if let Some(login) = self.login.take() {
                    login.complete();
                }
                Ok(Auth::Accept)
            }
            None => Ok(Auth::reject()),
        }
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.channels.len() >= 4 {
            reply.reject(russh::ChannelOpenFailure::ResourceShortage).await;
            return Ok(());
        }
        self.channels.insert(channel.id(), channel);
        reply.accept().await;
        Ok(())
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // Only git's protocol negotiation is honoured; nothing else reaches
        // the git process's environment.
        if name == "GIT_PROTOCOL"
            && value.len() < 64
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"=:._-".contains(&b))
        {
            self.git_protocol = Some(value.to_owned());
            session.channel_success(channel)
        } else {
            session.channel_failure(channel)
        }
    }

    async fn shell_request(&mut self, channel: ChannelId, session: &mut Session) -> Result<(), Self::Error> {
        session.channel_success(channel)?;
        if let Some(channel) = self.channels.remove(&channel) {
            tokio::spawn(refuse(
                channel,
                Refusal::Plain("refused: interactive shells are not available; push with git".into()),
            ));
        }
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let (Some(channel), Some(user)) = (self.channels.remove(&channel), self.user.clone()) else {
            return session.channel_failure(channel);
        };
        session.channel_success(channel.id())?;
        let job = Exec {
            state: self.state.clone(),
            user,
            command: data.to_vec(),
            git_protocol: self.git_protocol.clone(),
        };
        tokio::spawn(job.run(channel));
        Ok(())
    }
}

/// Why a command was refused, and how to tell the client.
enum Refusal {
    /// A one-line message on stderr (non-git commands).
    Plain(String),
    /// A git `ERR` packet, which git prints as `fatal: remote error: ...`.
    Git(String),
}

/// Sends a refusal and ends the channel with exit status 1.
async fn refuse(channel: Channel<Msg>, refusal: Refusal) {
    let _ = match refusal {
        Refusal::Plain(message) => {
            channel
                .extended_data_bytes(1, format!("{message}\n").into_bytes())
                .await
        }
        Refusal::Git(message) => channel.data_bytes(pkt_line(&format!("ERR {message}\n"))).await,
    };
    let _ = channel.exit_status(1).await;
    let _ = channel.eof().await;
    let _ = channel.close().await;
}

/// A git pkt-line: four hex digits of length (including themselves), then data.
fn pkt_line(data: &str) -> Vec<u8> {
    let mut line = format!("{:04x}", data.len() + 4).into_bytes();
    line.extend_from_slice(data.as_bytes());
    line
}

/// Holds an app's push slot; released on drop.
struct PushSlot {
    state: Arc<SshState>,
    app: String,
}

impl Drop for PushSlot {
    fn drop(&mut self) {
        self.state
            .pushing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.app);
    }
}

/// One exec request.
struct Exec {
    state: Arc<SshState>,
    user: String,
    command: Vec<u8>,
    git_protocol: Option<String>,
}

impl Exec {
    async fn run(self, channel: Channel<Msg>) {
        let parsed = match command::parse(&self.command) {
            Ok(parsed) => parsed,
            Err(message) => return refuse(channel, Refusal::Plain(message)).await,
        };
        let write = parsed.service == GitService::ReceivePack;
        if let Err(err) = self
            .state
            .controller
            .authorize(&self.user, &parsed.app, write)
            .await
        {
            let message = match err {
                ControllerError::NotFound(_) => format!("App {} does not exist.", parsed.app),
                ControllerError::Denied(_) => format!("{} may not access {}.", self.user, parsed.app),
                other => other.to_string(),
            };
            return refuse(channel, Refusal::Git(message)).await;
        }
        let _slot = if write {
            let acquired = self
                .state
                .pushing
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(parsed.app.clone());
            if !acquired {
                return refuse(channel, Refusal::Git("Another git push is ongoing".into())).await;
            }
            Some(PushSlot {
                state: self.state.clone(),
                app: parsed.app.clone(),
            })
        } else {
            None
        };
        let repo = if write {
            match self.state.repos.ensure(&parsed.app).await {
                Ok(repo) => repo,
                Err(err) => {
                    tracing::error!(error = %err, app = %parsed.app, "cannot prepare the repository");
                    return refuse(
                        channel,
                        Refusal::Git("The builder cannot prepare the repository.".into()),
                    )
                    .await;
                }
            }
        } else {
            let repo = self.state.repos.path(&parsed.app);
            if !repo.join("HEAD").exists() {
                return refuse(
                    channel,
                    Refusal::Git(format!("Nothing has been pushed to {} yet.", parsed.app)),
                )
                .await;
            }
            repo
        };

        let context = PushContext {
            app: parsed.app.clone(),
            username: self.user.clone(),
            repo: repo.clone(),
        };
        let token = write.then(|| self.state.pushes.register(context));
        let mut git = Command::new("git");
        git.arg(parsed.service.subcommand())
            .arg(&repo)
            .env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
            )
            .env(SOCKET_ENV, &self.state.socket)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        if let Some(token) = &token {
            git.env(TOKEN_ENV, token.as_str());
        }
        if let Some(protocol) = &self.git_protocol {
            git.env("GIT_PROTOCOL", protocol);
        }
        let code = match git.spawn() {
            Ok(child) => pipe(child, channel).await,
            Err(err) => {
                tracing::error!(error = %err, "cannot start git");
                return refuse(channel, Refusal::Git("The builder cannot start git.".into())).await;
            }
        };
        tracing::info!(app = %parsed.app, user = %self.user, service = parsed.service.subcommand(), code, "git finished");
    }
}

/// Connects a git process to the SSH channel until git exits; returns its
/// exit status (also sent to the client).
async fn pipe(mut child: tokio::process::Child, channel: Channel<Msg>) -> u32 {
    let (mut read, write) = channel.split();
    let mut stdin = child.stdin.take();
    let feed = tokio::spawn(async move {
        while let Some(message) = read.wait().await {
            match message {
                ChannelMsg::Data { data } => {
                    let Some(pipe) = stdin.as_mut() else { continue };
                    if pipe.write_all(&data).await.is_err() {
                        stdin = None;
                    }
                }
                ChannelMsg::Eof => stdin = None,
                ChannelMsg::Close => break,
                _ => {}
            }
        }
    });
    let stdout = child.stdout.take().map(|mut out| {
        let mut to = write.make_writer();
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut out, &mut to).await;
            let _ = to.flush().await;
        })
    });
    let stderr = child.stderr.take().map(|mut err| {
        let mut to = write.make_writer_ext(Some(1));
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut err, &mut to).await;
            let _ = to.flush().await;
        })
    });
    let status = child.wait().await;
    for task in [stdout, stderr].into_iter().flatten() {
        let _ = task.await;
    }
    feed.abort();
    let code = match status {
        Ok(status) => status.code().map_or(1, |c| u32::try_from(c).unwrap_or(1)),
        Err(_) => 1,
    };
    let _ = write.exit_status(code).await;
    let _ = write.eof().await;
    let _ = write.close().await;
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkt_lines_count_their_own_header() {
        assert_eq!(pkt_line("ERR x\n"), b"000aERR x\n".to_vec());
    }
}
