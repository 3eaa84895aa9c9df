//! A real `moto_server` (SQS, Secrets Manager) on a free loopback port, for tests and dev tools.
//! The tests share one per process, started on first use; the benchmarks start their own over
//! TLS, as the real endpoints are. Each exits when this process does (its stdin is ours).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A running moto server.
pub struct Moto {
    process: Child,
    /// `http://127.0.0.1:<port>` (or `https://` when started with TLS).
    pub endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// A certificate (PEM, valid for 127.0.0.1) and its private key, for serving TLS.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The certificate chain.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
}

/// A free loopback TCP port.
pub fn free_port() -> u16 {
    let listener =
        TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)).expect("bind a loopback port");
    listener.local_addr().expect("local address").port()
}

/// The shared moto server, started on first use.
pub fn moto() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(|| start(None))
}

/// The Python the tests and tools run (moto, the official libraries, the Python consumer):
/// `HOOKRELAY_TEST_PYTHON`, else the repository's `.venv` that `scripts/test.sh` installs.
pub fn test_python() -> PathBuf {
    std::env::var_os("HOOKRELAY_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python"))
}

/// A moto server of the caller's own, serving TLS when `tls` is given; it stops when dropped.
pub fn start(tls: Option<&TlsFiles>) -> Moto {
    let python = test_python();
    assert!(
        python.exists(),
        "no Python with moto at {}: run scripts/test.sh, which installs it into .venv",
        python.display()
    );
    spawn(&python, free_port(), tls).unwrap_or_else(|problem| panic!("{problem}"))
}

/// A moto server run by `python` (which has moto installed) on `port`, serving TLS when `tls`
/// is given, once it answers; it stops when dropped or when this process exits.
pub fn spawn(python: &Path, port: u16, tls: Option<&TlsFiles>) -> Result<Moto, String> {
    // moto exits when our end of its stdin closes, i.e. when this process exits for any reason,
    // so no server outlives the tests.
    let launcher = "import os, sys, threading\n\
                    threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()\n\
                    from moto.server import main\n\
                    main(['-H', '127.0.0.1', '-p'] + sys.argv[1:])\n";
    let mut args = vec!["-c".to_owned(), launcher.to_owned(), port.to_string()];
    if let Some(tls) = tls {
        let path = |p: &Path| p.to_string_lossy().into_owned();
        args.extend(["-c".into(), path(&tls.cert), "-k".into(), path(&tls.key)]);
    }
    let mut process = Command::new(python)
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|error| format!("start moto_server with {}: {error}", python.display()))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let address = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
    loop {
        if let Ok(mut stream) = TcpStream::connect(address) {
            if tls.is_some() {
                break; // listening; the clients' retries cover the last moments of startup
            }
            let _ = stream.write_all(b"GET /moto-api/ HTTP/1.0\r\n\r\n");
            let mut head = [0u8; 12];
            if stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") {
                break;
            }
        }
        if let Ok(Some(status)) = process.try_wait() {
            return Err(format!(
                "moto_server exited at start ({status}): is moto installed for {}?",
                python.display()
            ));
        }
        if Instant::now() > deadline {
            let _ = process.kill();
            return Err(format!(
                "moto_server did not start on port {port} within 60 s"
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    Ok(Moto {
        process,
        endpoint: format!("{scheme}://127.0.0.1:{port}"),
    })
}
