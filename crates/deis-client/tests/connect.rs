//! End-to-end checks of `DeisClient` against an in-process gRPC server.

use deis_client::v2::platform_service_server::{PlatformService, PlatformServiceServer};
use deis_client::v2::{GetPlatformInfoRequest, GetPlatformInfoResponse};
use deis_client::{ClientError, DeisClient};
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

/// Echoes the `authorization` header back in `platform_version`.
struct Echo;

#[tonic::async_trait]
impl PlatformService for Echo {
    async fn get_platform_info(
        &self,
        request: Request<GetPlatformInfoRequest>,
    ) -> Result<Response<GetPlatformInfoResponse>, Status> {
        let auth = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("<none>")
            .to_owned();
        Ok(Response::new(GetPlatformInfoResponse {
            api_version: "2.3".into(),
            platform_version: auth,
            ..Default::default()
        }))
    }
}

async fn serve() -> std::io::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(
        Server::builder()
            .add_service(PlatformServiceServer::new(Echo))
            .serve_with_incoming(TcpIncoming::from(listener)),
    );
    Ok(format!("{}:{}", addr.ip(), addr.port()))
}

async fn platform_version(client: &DeisClient) -> Result<String, ClientError> {
    Ok(client
        .platform()
        .get_platform_info(GetPlatformInfoRequest {})
        .await?
        .into_inner()
        .platform_version)
}

#[tokio::test]
async fn token_travels_in_authorization_header() -> Result<(), Box<dyn std::error::Error>> {
    let addr = serve().await?;
    let client = DeisClient::connect(&addr, Some("s3cret".into())).await?;
    assert_eq!(client.url().as_str(), format!("http://{addr}"));
    assert_eq!(platform_version(&client).await?, "token s3cret");

    let anonymous = client.with_token(None)?;
    assert_eq!(platform_version(&anonymous).await?, "<none>");
    Ok(())
}

#[tokio::test]
async fn unreachable_controller_is_one_sentence() -> Result<(), Box<dyn std::error::Error>> {
    // Bind then drop to get a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let url = format!("http://127.0.0.1:{port}");
    let Err(err) = DeisClient::connect(&url, None).await else {
        panic!("connecting to a closed port must fail");
    };
    assert!(matches!(err, ClientError::Unreachable { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("cannot reach the controller at {url}: connection refused — is `deis-workflow up` running?")
    );
    Ok(())
}

#[tokio::test]
async fn invalid_url_is_refused_before_connecting() {
    let Err(err) = DeisClient::connect("ftp://example.com", None).await else {
        panic!("ftp must be refused");
    };
    assert!(matches!(err, ClientError::InvalidUrl { .. }), "{err:?}");
}

#[tokio::test]
async fn a_controller_that_stops_answering_is_noticed_and_named() -> Result<(), Box<dyn std::error::Error>> {
    // The kernel completes the handshake; nothing ever answers on it (as
    // with a stopped or stuck controller).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let options = deis_client::ConnectOptions {
        keep_alive: std::time::Duration::from_millis(200),
        ..Default::default()
    };
    let client = DeisClient::connect_with(&url, None, &options).await?;
    let started = std::time::Instant::now();
    let asked = tokio::time::timeout(std::time::Duration::from_secs(10), platform_version(&client)).await;
    let Ok(Err(err)) = asked else {
        panic!("the call must fail on its own, not hang: {asked:?}");
    };
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        err.to_string(),
        "The controller accepted the connection but stopped answering; \
         check that it is running and not stuck (`deis-workflow status` on its machine)."
    );
    drop(listener);
    Ok(())
}
