//! What the binary's tests share: free loopback ports, a connection that waits for the node,
//! the node's administrator token, and a receive request.
// Each test file uses only some of these.
#![allow(dead_code)]

use std::net::TcpListener as StdListener;
use std::path::Path;
use std::time::{Duration, Instant};

use motcua_proto::v1 as pb;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;

/// The applicant of [`receive_request`] (tests check it never leaks).
pub const APPLICANT_NAME: &str = "Trần Thị B";
pub const APPLICANT_ID: &str = "001077012345";

pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("its address")
        .port()
}

/// A channel to the node on `port`, waiting up to 30 s for it to come up.
pub async fn connect(port: u16) -> Channel {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(channel) = Channel::from_shared(format!("http://127.0.0.1:{port}"))
            .expect("a URI")
            .connect()
            .await
        {
            return channel;
        }
        assert!(Instant::now() < deadline, "the node did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `Bearer <the administrator token the node created in its data directory>`.
pub fn admin_bearer(dir: &Path) -> MetadataValue<Ascii> {
    let token = std::fs::read_to_string(dir.join("auth/admin.token")).expect("the admin token");
    format!("Bearer {}", token.trim()).parse().expect("ascii")
}

/// A counter reception at unit 000.00.01.H22 under `procedure`.
pub fn receive_request(request_id: String, procedure: &str) -> pb::ReceiveRequest {
    pb::ReceiveRequest {
        meta: Some(pb::CommandMeta {
            request_id,
            ..Default::default()
        }),
        dossier: Some(pb::NewDossier {
            procedure_code: procedure.into(),
            receiving_unit: "000.00.01.H22".into(),
            applicant: Some(pb::Applicant {
                r#type: pb::ApplicantType::Person as i32,
                name: APPLICANT_NAME.into(),
                identity_number: APPLICANT_ID.into(),
                phone: String::new(),
            }),
            ..Default::default()
        }),
        channel: pb::Channel::Counter as i32,
    }
}
