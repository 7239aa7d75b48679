//! Tokens as the services check them: the local authority's own, RS256 from a PEM key and
//! from a JWKS URL served over real HTTP, and every way a token can be wrong.

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use motcua_auth::Role;
use motcua_auth::jwt::{Claims, TokenError, TokenRules, Verifier};
use motcua_auth::local::LocalAuthority;

fn rules() -> TokenRules {
    LocalAuthority::rules()
}

fn claims(role: &str, units: &[&str], exp_in: i64) -> Claims {
    let now = chrono::Utc::now().timestamp();
    Claims {
        sub: "lan.nguyen".into(),
        role: role.into(),
        units: units.iter().map(|u| (*u).to_owned()).collect(),
        iss: "motcua-local".into(),
        aud: "motcua".into(),
        exp: now + exp_in,
        iat: now,
    }
}

const RSA_PRIVATE: &[u8] = include_bytes!("fixtures/rsa-private.pem");
const RSA_PUBLIC: &[u8] = include_bytes!("fixtures/rsa-public.pem");

fn rs256(claims: &Claims) -> String {
    encode(
        &Header::new(Algorithm::RS256),
        claims,
        &EncodingKey::from_rsa_pem(RSA_PRIVATE).expect("the test key"),
    )
    .expect("signs")
}

#[tokio::test]
async fn the_local_authority_issues_tokens_its_key_verifies() {
    let dir = tempfile::tempdir().expect("a directory");
    let authority = LocalAuthority::new(dir.path());
    assert!(
        authority.ensure().expect("creates"),
        "first start creates the credential"
    );
    assert!(!authority.ensure().expect("idempotent"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for path in [authority.private_key_path(), authority.admin_token_path()] {
            let mode = std::fs::metadata(&path)
                .expect("exists")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{}", path.display());
        }
    }
    let verifier = Verifier::from_pem_file(&authority.public_key_path(), rules()).expect("the key");
    let admin = std::fs::read_to_string(authority.admin_token_path()).expect("the token");
    let principal = verifier.verify(admin.trim()).await.expect("valid");
    assert_eq!(principal.role, Role::Admin);
    let officer = authority
        .issue(
            "lan.nguyen",
            Role::CounterOfficer,
            &["000.00.01.H22".into()],
            chrono::Duration::hours(1),
        )
        .expect("issues");
    let principal = verifier.verify(&officer).await.expect("valid");
    assert_eq!(principal.subject, "lan.nguyen");
    assert_eq!(principal.units, vec!["000.00.01.H22".to_owned()]);

    // A token of another node's authority is not trusted here.
    let other_dir = tempfile::tempdir().expect("a directory");
    let other = LocalAuthority::new(other_dir.path());
    other.ensure().expect("creates");
    let foreign = other
        .issue("mallory", Role::Admin, &[], chrono::Duration::hours(1))
        .expect("issues");
    assert_eq!(verifier.verify(&foreign).await, Err(TokenError::Signature));

    // Forged: the payload changed after signing.
    let mut parts: Vec<String> = officer.split('.').map(str::to_owned).collect();
    use base64::Engine;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut payload: serde_json::Value =
        serde_json::from_slice(&engine.decode(&parts[1]).expect("base64")).expect("json");
    payload["role"] = "admin".into();
    parts[1] = engine.encode(payload.to_string());
    assert_eq!(
        verifier.verify(&parts.join(".")).await,
        Err(TokenError::Signature)
    );
    // Expired.
    let expired = authority
        .issue(
            "lan.nguyen",
            Role::CounterOfficer,
            &["000.00.01.H22".into()],
            chrono::Duration::hours(-2),
        )
        .expect("issues");
    assert_eq!(verifier.verify(&expired).await, Err(TokenError::Expired));
    assert!(matches!(
        verifier.verify("not.a.jwt").await,
        Err(TokenError::Malformed(_))
    ));
}

#[tokio::test]
async fn rs256_tokens_with_wrong_issuer_audience_algorithm_or_claims_are_refused() {
    let verifier = Verifier::from_pem(RSA_PUBLIC, rules()).expect("an RSA key");
    let good = claims("processing_officer", &["H44.100"], 600);
    let principal = verifier.verify(&rs256(&good)).await.expect("valid");
    assert_eq!(principal.role, Role::ProcessingOfficer);

    let mut wrong_audience = good.clone();
    wrong_audience.aud = "someone-else".into();
    assert_eq!(
        verifier.verify(&rs256(&wrong_audience)).await,
        Err(TokenError::Audience("motcua".into()))
    );
    let mut wrong_issuer = good.clone();
    wrong_issuer.iss = "https://evil.example".into();
    assert!(matches!(
        verifier.verify(&rs256(&wrong_issuer)).await,
        Err(TokenError::Issuer(_))
    ));
    let unknown_role = claims("superuser", &[], 600);
    assert!(matches!(
        verifier.verify(&rs256(&unknown_role)).await,
        Err(TokenError::Claims(_))
    ));
    let no_units = claims("counter_officer", &[], 600);
    assert!(matches!(
        verifier.verify(&rs256(&no_units)).await,
        Err(TokenError::Claims(_))
    ));
    // An HMAC token "signed" with the public key (the classic confusion) and `none`.
    let hmac = encode(
        &Header::new(Algorithm::HS256),
        &good,
        &EncodingKey::from_secret(RSA_PUBLIC).expect("a key"),
    )
    .expect("signs");
    assert!(matches!(
        verifier.verify(&hmac).await,
        Err(TokenError::Algorithm(_))
    ));
    use base64::Engine;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let none = format!(
        "{}.{}.",
        engine.encode(r#"{"alg":"none","typ":"JWT"}"#),
        engine.encode(serde_json::to_string(&good).expect("json"))
    );
    assert!(verifier.verify(&none).await.is_err());
}

#[tokio::test]
async fn keys_from_a_jwks_url_are_fetched_and_used() {
    // A JWKS endpoint on loopback, serving the RSA test key.
    use jsonwebtoken::jwk::{
        AlgorithmParameters, CommonParameters, Jwk, JwkSet, KeyAlgorithm, RSAKeyParameters,
    };
    let pem = String::from_utf8(RSA_PUBLIC.to_vec()).expect("utf-8");
    let key = rsa_components(&pem);
    let set = JwkSet {
        keys: vec![Jwk {
            common: CommonParameters {
                key_algorithm: Some(KeyAlgorithm::RS256),
                key_id: Some("k1".into()),
                ..CommonParameters::default()
            },
            algorithm: AlgorithmParameters::RSA(RSAKeyParameters {
                key_type: Default::default(),
                n: key.0,
                e: key.1,
            }),
        }],
    };
    let body = serde_json::to_string(&set).expect("json");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let addr = listener.local_addr().expect("an address");
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let body = body.clone();
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                let _ = socket.read(&mut buffer).await;
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(reply.as_bytes()).await;
            });
        }
    });
    let verifier = tokio::time::timeout(
        Duration::from_secs(10),
        Verifier::from_jwks_url(&format!("http://{addr}/jwks.json"), rules()),
    )
    .await
    .expect("in time")
    .expect("the key set");
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("k1".into());
    let token = encode(
        &header,
        &claims("monitor", &[], 600),
        &EncodingKey::from_rsa_pem(RSA_PRIVATE).expect("key"),
    )
    .expect("signs");
    assert_eq!(
        verifier.verify(&token).await.expect("valid").role,
        Role::Monitor
    );
}

/// The modulus and exponent of an RSA public key, base64url, for a JWK (read with openssl's
/// text dump would need a dependency; the DER is parsed here by hand: SPKI → RSAPublicKey).
fn rsa_components(pem: &str) -> (String, String) {
    use base64::Engine;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("base64");
    // Walk: SEQUENCE { SEQUENCE {alg}, BIT STRING { SEQUENCE { INTEGER n, INTEGER e } } }
    fn read(der: &[u8], at: usize) -> (u8, usize, usize) {
        let tag = der[at];
        let mut len = der[at + 1] as usize;
        let mut start = at + 2;
        if len & 0x80 != 0 {
            let bytes = len & 0x7f;
            len = 0;
            for i in 0..bytes {
                len = (len << 8) | der[at + 2 + i] as usize;
            }
            start += bytes;
        }
        (tag, start, len)
    }
    let (_, outer, _) = read(&der, 0);
    let (_, alg, alg_len) = read(&der, outer);
    let (_, bits, _) = read(&der, alg + alg_len);
    let (_, seq, _) = read(&der, bits + 1);
    let (_, n, n_len) = read(&der, seq);
    let (_, e, e_len) = read(&der, n + n_len);
    let mut modulus = &der[n..n + n_len];
    while modulus.first() == Some(&0) {
        modulus = &modulus[1..];
    }
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    (engine.encode(modulus), engine.encode(&der[e..e + e_len]))
}
