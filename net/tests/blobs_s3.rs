//! The blob store's S3 path, for real: each test starts moto's S3 server (`moto_server`, from
//! PyPI's `moto[server]`) on a free loopback port, creates a bucket, and runs the round trips of
//! `tests/blobs.rs` through `BlobStore::open("s3://bucket?endpoint=...")` with bodies sealed by
//! `engine::envelope`. Without moto the tests fail and say how to install it: the S3 path is not
//! tested by skipping it.
//!
//! The server is found at `$MEDCHAIN_MOTO_SERVER`, then `/opt/moto/bin/moto_server`, then
//! `moto_server` on `PATH`; it is killed when its test ends.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use engine::codec::Digest;
use engine::envelope::{self, BlobRef, DataKey, EnvelopeError, DATA_KEY_LEN, NONCE_LEN};
use net::blobs::{BlobError, BlobStore, BlobStoreConfig};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use rand::{RngCore, SeedableRng};

const INSTALL: &str = "install it with `python3 -m venv /opt/moto && /opt/moto/bin/pip install 'moto[server]'` \
     (apt-get install -y python3-venv first if venv is missing), or set MEDCHAIN_MOTO_SERVER to a moto_server executable";

const ACCESS_KEY: &str = "medchain-test-key";
const SECRET_KEY: &str = "medchain-test-secret-7d1e0c";
const REGION: &str = "us-east-1";

/// Credentials for moto (which takes any) come from the environment, as in a deployment. Set once,
/// before any test reads the environment; every test calls this first.
fn aws_env() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::env::set_var("AWS_ACCESS_KEY_ID", ACCESS_KEY);
        std::env::set_var("AWS_SECRET_ACCESS_KEY", SECRET_KEY);
        std::env::remove_var("AWS_SESSION_TOKEN");
        // The spec's endpoint and region must win over these.
        std::env::set_var("AWS_ENDPOINT_URL", "https://s3.invalid");
        std::env::set_var("AWS_REGION", "eu-west-3");
    });
}

fn moto_server_path() -> PathBuf {
    if let Some(path) = std::env::var_os("MEDCHAIN_MOTO_SERVER") {
        let path = PathBuf::from(path);
        assert!(path.is_file(), "MEDCHAIN_MOTO_SERVER={} is not a file; {INSTALL}", path.display());
        return path;
    }
    let opt = Path::new("/opt/moto/bin/moto_server");
    if opt.is_file() {
        return opt.to_path_buf();
    }
    if let Some(found) = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("moto_server"))
        .find(|p| p.is_file())
    {
        return found;
    }
    panic!(
        "moto's S3 server (moto_server) is needed for the S3 blob-store tests and was not found \
         in $MEDCHAIN_MOTO_SERVER, /opt/moto/bin/moto_server or PATH; {INSTALL}"
    );
}

/// A running moto server; killed on drop.
struct Moto {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
    tls: bool,
    _dir: tempfile::TempDir,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    async fn start() -> Moto {
        Moto::start_with(false).await
    }

    /// With `tls`, moto serves HTTPS with a self-signed certificate it makes itself.
    async fn start_with(tls: bool) -> Moto {
        let program = moto_server_path();
        // A port the kernel just gave out and took back; another process could take it in
        // between, in which case moto exits (seen below) and we try another.
        for _attempt in 0..3 {
            let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port();
            let dir = tempfile::tempdir().unwrap();
            let log = dir.path().join("moto.log");
            let out = File::create(&log).unwrap();
            let mut args = vec!["-H".to_owned(), "127.0.0.1".to_owned(), "-p".to_owned(), port.to_string()];
            if tls {
                args.push("-s".to_owned());
            }
            let child = Command::new(&program)
                .args(&args)
                .stdin(Stdio::null())
                .stdout(out.try_clone().unwrap())
                .stderr(out)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}; {INSTALL}", program.display()));
            let mut moto = Moto { child, addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)), log, tls, _dir: dir };
            if moto.wait_ready().await {
                return moto;
            }
        }
        panic!("moto_server ({}) did not start on three ports", program.display());
    }

    /// Polls until moto answers S3's ListBuckets (over TLS: accepts connections); false if it
    /// exited (port taken).
    async fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(60);
        let client = reqwest::Client::new();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                if log.contains("Address already in use") {
                    return false;
                }
                panic!("moto_server exited ({status}) before it was ready:\n{log}");
            }
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                if self.tls {
                    return true;
                }
                if let Ok(r) = client.get(self.url("/")).send().await {
                    if r.status().is_success() {
                        return true;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "moto_server not ready on {} after 60 s:\n{}",
                self.addr,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn url(&self, path: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}{path}", self.addr)
    }

    /// Creates `bucket` with S3's CreateBucket (moto needs no signature).
    async fn bucket(&self, bucket: &str) {
        let r = reqwest::Client::new().put(self.url(&format!("/{bucket}"))).send().await.unwrap();
        assert!(r.status().is_success(), "CreateBucket {bucket}: {}", r.status());
    }

    fn spec(&self, bucket: &str) -> String {
        format!("s3://{bucket}?endpoint={}&region={REGION}", self.url(""))
    }

    /// The bucket through object_store directly, beside the blob store: to look at and tamper
    /// with the stored bytes.
    fn raw(&self, bucket: &str) -> Arc<dyn ObjectStore> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let s3 = AmazonS3Builder::new()
            .with_endpoint(self.url(""))
            .with_allow_http(true)
            .with_bucket_name(bucket)
            .with_region(REGION)
            .with_access_key_id(ACCESS_KEY)
            .with_secret_access_key(SECRET_KEY)
            .build()
            .unwrap();
        Arc::new(s3)
    }
}

/// moto and a store on bucket `bucket` in it.
async fn moto_store(bucket: &str) -> (Moto, BlobStore) {
    aws_env();
    let moto = Moto::start().await;
    moto.bucket(bucket).await;
    let store = BlobStore::open(&moto.spec(bucket)).unwrap();
    (moto, store)
}

fn rng() -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(5)
}

fn fresh_key(rng: &mut impl RngCore) -> (DataKey, [u8; NONCE_LEN]) {
    let mut key = [0u8; DATA_KEY_LEN];
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut key);
    rng.fill_bytes(&mut nonce);
    (DataKey::from_bytes(key), nonce)
}

async fn raw_get(raw: &dyn ObjectStore, locator: &str) -> Vec<u8> {
    raw.get(&ObjectPath::from(locator)).await.unwrap().bytes().await.unwrap().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_of_1_byte_to_64_mb_round_trip_through_s3() {
    let (moto, store) = moto_store("medchain-round-trips").await;
    let raw = moto.raw("medchain-round-trips");
    // The store says where it is, with the spec's endpoint and region over the environment's,
    // and never the credentials.
    let described = store.describe().to_owned();
    assert_eq!(described, format!("s3://medchain-round-trips?endpoint={}&region={REGION}", moto.url("")));
    for shown in [described, store.to_string(), format!("{store:?}")] {
        assert!(!shown.contains(SECRET_KEY) && !shown.contains(ACCESS_KEY), "{shown}");
    }

    let mut rng = rng();
    for (i, len) in [1usize, 64 * 1024, 1024 * 1024, 64 * 1024 * 1024].into_iter().enumerate() {
        let record = Digest([i as u8 + 1; 32]);
        let mut body = vec![0u8; len];
        rng.fill_bytes(&mut body);
        let (key, nonce) = fresh_key(&mut rng);
        let blob = envelope::seal(&key, &nonce, &record, &body).unwrap();
        let anchored = BlobRef::of(&blob);
        let started = Instant::now();
        let locator = store.put(&record, &blob).await.unwrap();
        let put = started.elapsed();
        assert_eq!(locator, BlobStore::locator(&record));
        let started = Instant::now();
        let fetched = store.get(&record, &locator, &anchored).await.unwrap();
        eprintln!("{len} bytes: put {put:?}, get {:?}", started.elapsed());
        assert_eq!(envelope::open(&key, &record, &anchored, &fetched).unwrap(), body, "{len} bytes");
        // The bucket holds the ciphertext, not the body.
        let stored = raw_get(raw.as_ref(), &locator).await;
        assert_eq!(stored, blob);
        if len >= 64 {
            assert!(!stored.windows(64).any(|w| w == &body[..64]), "plaintext in the bucket ({len} bytes)");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_object_a_swapped_locator_and_a_missing_object_are_refused() {
    let (moto, store) = moto_store("medchain-refusals").await;
    let raw = moto.raw("medchain-refusals");
    let mut rng = rng();
    let (a, b) = (Digest([0xaa; 32]), Digest([0xbb; 32]));
    let (key, nonce) = fresh_key(&mut rng);
    let blob_a = envelope::seal(&key, &nonce, &a, b"record a").unwrap();
    let blob_b = envelope::seal(&key, &nonce, &b, b"record b").unwrap();
    let (ref_a, ref_b) = (BlobRef::of(&blob_a), BlobRef::of(&blob_b));
    let loc_a = store.put(&a, &blob_a).await.unwrap();
    let loc_b = store.put(&b, &blob_b).await.unwrap();

    // Swapped locator: the anchor of `a` pointing at `b`'s blob.
    let e = store.get(&a, &loc_b, &ref_a).await.unwrap_err();
    assert!(matches!(e, BlobError::Envelope(EnvelopeError::DigestMismatch { .. })), "{e}");
    assert!(e.to_string().contains(&a.to_string()), "names the record: {e}");

    // Tampered in the bucket (same length, overwritten behind the store's back): refused by
    // the digest, before decryption, naming the record.
    let mut bytes = raw_get(raw.as_ref(), &loc_a).await;
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    raw.put(&ObjectPath::from(loc_a.as_str()), PutPayload::from(bytes)).await.unwrap();
    let e = store.get(&a, &loc_a, &ref_a).await.unwrap_err();
    assert!(matches!(e, BlobError::Envelope(EnvelopeError::DigestMismatch { .. })), "{e}");
    assert!(e.to_string().contains(&a.to_string()), "names the record: {e}");

    // Paths outside the store's layout are refused before the store is asked.
    for bad in ["../../etc/passwd", "/etc/passwd", "records/../x", "s3://bucket/x", ""] {
        let e = store.get(&b, bad, &ref_b).await.unwrap_err();
        assert!(matches!(e, BlobError::BadLocator { .. }), "{bad}: {e}");
    }

    // Missing.
    let c = Digest([0xcc; 32]);
    let e = store.get(&c, &BlobStore::locator(&c), &ref_b).await.unwrap_err();
    assert!(matches!(e, BlobError::NotFound { .. }), "{e}");
    assert!(e.to_string().contains(&c.to_string()), "{e}");
    assert!(e.to_string().contains("s3://medchain-refusals"), "names the store: {e}");

    // The untouched blob still opens.
    let fetched = store.get(&b, &loc_b, &ref_b).await.unwrap();
    assert_eq!(envelope::open(&key, &b, &ref_b, &fetched).unwrap(), b"record b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storing_in_s3_is_idempotent_and_never_replaces_a_blob() {
    let (moto, store) = moto_store("medchain-idempotent").await;
    let raw = moto.raw("medchain-idempotent");
    let mut rng = rng();
    let record = Digest([1; 32]);
    let (key, nonce) = fresh_key(&mut rng);
    let blob = envelope::seal(&key, &nonce, &record, b"first").unwrap();
    let locator = store.put(&record, &blob).await.unwrap();
    assert_eq!(store.put(&record, &blob).await.unwrap(), locator, "a retry succeeds");

    let other = envelope::seal(&key, &nonce, &record, b"second").unwrap();
    let e = store.put(&record, &other).await.unwrap_err();
    assert!(matches!(e, BlobError::Conflict { .. }), "{e}");
    let kept = store.get(&record, &locator, &BlobRef::of(&blob)).await.unwrap();
    assert_eq!(kept, blob, "the first blob is kept");
    assert_eq!(raw_get(raw.as_ref(), &locator).await, blob, "and is what the bucket holds");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_under_two_prefixes_share_a_bucket_without_seeing_each_other() {
    aws_env();
    let moto = Moto::start().await;
    moto.bucket("medchain-shared").await;
    let a = BlobStore::open(&format!("s3://medchain-shared/consortium-a?endpoint={}&region={REGION}", moto.url("")))
        .unwrap();
    let b = BlobStore::open(&format!("s3://medchain-shared/consortium-b/?endpoint={}&region={REGION}", moto.url("")))
        .unwrap();
    assert!(a.name().starts_with("s3://medchain-shared/consortium-a?"), "{}", a.name());
    let raw = moto.raw("medchain-shared");
    let mut rng = rng();
    // The same record id in both stores, with different bodies: no conflict.
    let record = Digest([4; 32]);
    let (key, nonce) = fresh_key(&mut rng);
    let blob_a = envelope::seal(&key, &nonce, &record, b"consortium a's body").unwrap();
    let blob_b = envelope::seal(&key, &nonce, &record, b"consortium b's body").unwrap();
    let locator = a.put(&record, &blob_a).await.unwrap();
    assert_eq!(b.put(&record, &blob_b).await.unwrap(), locator, "locators are relative to the store");
    assert_eq!(a.get(&record, &locator, &BlobRef::of(&blob_a)).await.unwrap(), blob_a);
    assert_eq!(b.get(&record, &locator, &BlobRef::of(&blob_b)).await.unwrap(), blob_b);
    // In the bucket, each sits under its prefix, and nothing at the root.
    assert_eq!(raw_get(raw.as_ref(), &format!("consortium-a/{locator}")).await, blob_a);
    assert_eq!(raw_get(raw.as_ref(), &format!("consortium-b/{locator}")).await, blob_b);
    let root = BlobStore::open(&moto.spec("medchain-shared")).unwrap();
    let e = root.get(&record, &locator, &BlobRef::of(&blob_a)).await.unwrap_err();
    assert!(matches!(e, BlobError::NotFound { .. }), "{e}");
}

#[tokio::test]
async fn a_bucket_that_does_not_exist_is_an_error_naming_the_store() {
    aws_env();
    let moto = Moto::start().await;
    let store = BlobStore::open(&moto.spec("medchain-no-such-bucket")).unwrap();
    let record = Digest([7; 32]);
    let e = store.put(&record, b"x").await.unwrap_err();
    let shown = e.to_string();
    eprintln!("{shown}");
    assert!(shown.contains("s3://medchain-no-such-bucket"), "{shown}");
    assert!(shown.contains("the bucket does not exist"), "{shown}");
    assert!(!shown.contains(SECRET_KEY), "{shown}");
    // Reading says the same, not that the writer has not uploaded the blob yet.
    let anchored = BlobRef { digest: Digest([1; 32]), len: 1 };
    let e = store.get(&record, &BlobStore::locator(&record), &anchored).await.unwrap_err();
    assert!(matches!(e, BlobError::NoBucket { .. }), "{e}");
    // A missing object in a bucket that exists is still `NotFound`.
    moto.bucket("medchain-exists").await;
    let store = BlobStore::open(&moto.spec("medchain-exists")).unwrap();
    let e = store.get(&record, &BlobStore::locator(&record), &anchored).await.unwrap_err();
    assert!(matches!(e, BlobError::NotFound { .. }), "{e}");
}

#[tokio::test]
async fn an_https_endpoint_is_verified_and_a_self_signed_one_refused() {
    aws_env();
    let moto = Moto::start_with(true).await;
    let store = BlobStore::open(&moto.spec("medchain-tls")).unwrap();
    assert!(store.describe().contains("endpoint=https://127.0.0.1:"), "{store}");
    let record = Digest([9; 32]);
    let started = Instant::now();
    let e = store.put(&record, b"x").await.unwrap_err();
    let mut chain = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        chain += &format!(": {cause}");
        source = cause.source();
    }
    eprintln!("after {:?}: {chain}", started.elapsed());
    assert!(matches!(e, BlobError::Store { .. }), "{chain}");
    assert!(chain.contains("certificate"), "refused for its certificate: {chain}");
    // Refused in the TLS handshake, so no request ever reached moto's S3 handler.
    let log = std::fs::read_to_string(&moto.log).unwrap();
    assert!(!log.contains("PUT /medchain-tls"), "{log}");
}

#[test]
fn specs_parse_to_a_folder_or_a_bucket() {
    aws_env();
    let parse = |s: &str| s.parse::<BlobStoreConfig>().unwrap();
    assert_eq!(parse("blobs"), BlobStoreConfig::Local("blobs".into()));
    assert_eq!(parse("/srv/medchain/blobs"), BlobStoreConfig::Local("/srv/medchain/blobs".into()));
    assert_eq!(parse("file:///srv/medchain/blobs"), BlobStoreConfig::Local("/srv/medchain/blobs".into()));
    assert_eq!(parse("file://localhost/srv/my%20blobs"), BlobStoreConfig::Local("/srv/my blobs".into()));
    assert_eq!(
        parse("s3://medchain"),
        BlobStoreConfig::S3 { bucket: "medchain".into(), prefix: None, endpoint: None, region: None }
    );
    assert_eq!(
        parse("S3://medchain/"),
        BlobStoreConfig::S3 { bucket: "medchain".into(), prefix: None, endpoint: None, region: None }
    );
    let full = parse("s3://medchain.blobs?endpoint=http%3A%2F%2F127.0.0.1%3A9000&region=eu-west-3");
    assert_eq!(
        full,
        BlobStoreConfig::S3 {
            bucket: "medchain.blobs".into(),
            prefix: None,
            endpoint: Some("http://127.0.0.1:9000".into()),
            region: Some("eu-west-3".into()),
        }
    );
    assert_eq!(full.to_string(), "s3://medchain.blobs?endpoint=http://127.0.0.1:9000&region=eu-west-3");
    assert_eq!(parse(&full.to_string()), full, "Display gives a spec that parses back");
    let prefixed = parse("s3://medchain/consortium-a/blobs/?region=eu-west-3");
    assert_eq!(
        prefixed,
        BlobStoreConfig::S3 {
            bucket: "medchain".into(),
            prefix: Some("consortium-a/blobs".into()),
            endpoint: None,
            region: Some("eu-west-3".into()),
        }
    );
    assert_eq!(prefixed.to_string(), "s3://medchain/consortium-a/blobs?region=eu-west-3");
    assert_eq!(parse(&prefixed.to_string()), prefixed);
}

#[test]
fn bad_specs_say_what_is_wrong_and_never_echo_a_credential() {
    aws_env();
    let cases: &[(&str, &str)] = &[
        ("", "empty"),
        ("gs://bucket", "unsupported scheme gs://"),
        ("s3:/bucket", "needs `://`"),
        ("file://relative/blobs", "absolute path"),
        ("s3://", "no bucket"),
        ("s3://Bad_Bucket", "not an S3 bucket name"),
        ("s3://ab", "not an S3 bucket name"),
        ("s3://bucket/some//prefix", "not a key prefix"),
        ("s3://bucket/../other", "not a key prefix"),
        ("s3://bucket/a b", "not a key prefix"),
        ("s3://bucket?endpoint=127.0.0.1:9000", "not an http:// or https:// URL"),
        ("s3://bucket?endpoint=http://", "names no host"),
        ("s3://bucket?region=us-east-1&region=eu-west-1", "given twice"),
        ("s3://bucket?regoin=us-east-1", "unknown parameter \"regoin\""),
        ("s3://bucket?region=", "has no value"),
        ("s3://bucket?endpoint=http://h%zz", "two hex digits"),
        ("s3://AKIDEXAMPLE:wJalr/XUtnFEMI@bucket", "credentials do not belong in the spec"),
        ("s3://bucket?secret_access_key=wJalrXUtnFEMI", "credentials do not belong in the spec"),
        ("s3://bucket?endpoint=http://AKIDEXAMPLE:wJalrXUtnFEMI@127.0.0.1:9000", "credentials do not belong"),
    ];
    for (spec, says) in cases {
        let e = spec.parse::<BlobStoreConfig>().unwrap_err();
        let shown = e.to_string();
        assert!(matches!(e, BlobError::Spec { .. }), "{spec}: {shown}");
        assert!(shown.contains(says), "{spec:?} should say {says:?}: {shown}");
        assert!(shown.contains("s3://bucket[/prefix][?endpoint=URL&region=NAME]"), "says what a spec is: {shown}");
        assert!(!shown.contains("wJalr") && !shown.contains("AKIDEXAMPLE"), "a credential is shown: {shown}");
        // BlobStore::open refuses it the same way.
        assert!(matches!(BlobStore::open(spec), Err(BlobError::Spec { .. })), "{spec}");
    }
}

#[tokio::test]
async fn a_folder_spec_opens_a_local_store() {
    aws_env();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("made").join("blobs");
    for spec in [dir.display().to_string(), format!("file://{}", dir.display())] {
        let store = BlobStore::open(&spec).unwrap();
        assert!(dir.is_dir(), "created");
        assert_eq!(store.describe(), format!("file://{}", std::fs::canonicalize(&dir).unwrap().display()));
        let record = Digest([3; 32]);
        let mut rng = rng();
        let (key, nonce) = fresh_key(&mut rng);
        let blob = envelope::seal(&key, &nonce, &record, b"local").unwrap();
        let locator = store.put(&record, &blob).await.unwrap();
        assert_eq!(store.get(&record, &locator, &BlobRef::of(&blob)).await.unwrap(), blob);
        assert_eq!(std::fs::read(dir.join(&locator)).unwrap(), blob);
    }
}
