//! A TLS terminator for tests: Debian's `stunnel4` on a loopback port in front of a plain TCP
//! server, with a test CA, a server certificate for `127.0.0.1`/`localhost` and a client
//! certificate, all made by `openssl` in the test's directory. Killed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running terminator and its certificates.
pub struct Terminator {
    child: Child,
    /// The TLS port.
    pub port: u16,
    /// The CA's certificate (PEM).
    pub ca: PathBuf,
    /// A client certificate the CA signed (PEM).
    pub client_cert: PathBuf,
    /// Its key.
    pub client_key: PathBuf,
}

/// Runs `openssl` with `args` in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run openssl");
    assert!(status.success(), "openssl {args:?} failed");
}

impl Terminator {
    /// Certificates in `dir`, and TLS on a free port forwarding to `upstream` (`host:port`);
    /// `mutual`: clients must show a certificate the CA signed.
    pub fn start(dir: &Path, upstream: &str, mutual: bool) -> Terminator {
        Self::start_on(dir, super::free_port(), upstream, mutual)
    }

    /// [`start`](Self::start) on `port`.
    pub fn start_on(dir: &Path, port: u16, upstream: &str, mutual: bool) -> Terminator {
        std::fs::create_dir_all(dir).unwrap();
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=ringtail-test-ca",
            ],
        );
        std::fs::write(
            dir.join("ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
        )
        .unwrap();
        for name in ["server", "client"] {
            let (key, csr, pem) = (
                format!("{name}.key"),
                format!("{name}.csr"),
                format!("{name}.pem"),
            );
            openssl(
                dir,
                &[
                    "req",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-keyout",
                    &key,
                    "-out",
                    &csr,
                    "-subj",
                    &format!("/CN={name}"),
                ],
            );
            openssl(
                dir,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-out",
                    &pem,
                    "-days",
                    "2",
                    "-extfile",
                    "ext",
                ],
            );
        }
        let mut config = format!(
            "foreground = yes\npid =\n[tls]\naccept = 127.0.0.1:{port}\nconnect = {upstream}\ncert = {d}/server.pem\nkey = {d}/server.key\n",
            d = dir.display()
        );
        if mutual {
            config.push_str(&format!(
                "CAfile = {}/ca.pem\nverifyChain = yes\n",
                dir.display()
            ));
        }
        std::fs::write(dir.join("stunnel.conf"), config).unwrap();
        let mut child = Command::new("stunnel4")
            .arg(dir.join("stunnel.conf"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("stunnel.log")).unwrap())
            .spawn()
            .expect("start stunnel4 (Debian package stunnel4)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(child.try_wait().unwrap().is_none(), "stunnel4 exited");
            assert!(Instant::now() < deadline, "stunnel4 did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Terminator {
            child,
            port,
            ca: dir.join("ca.pem"),
            client_cert: dir.join("client.pem"),
            client_key: dir.join("client.key"),
        }
    }
}

impl Drop for Terminator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
