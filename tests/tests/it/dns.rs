//! Members named by DNS: `--bootstrap /dns4/NAME/...` across a network namespace this test
//! creates, with the name served from that namespace's `/etc/hosts` (`ip netns exec` mounts
//! `/etc/netns/NS/hosts` there). After the named member moves to a new address under the same
//! name, the other reconnects by resolving the name again. Needs root and iproute2 (`ip`).
//!
//! Layout: node A in the test's namespace on a veth address; node B inside namespace NS on the
//! other end, reachable only by its own outbound connections (its p2p listens on NS's
//! loopback), so only B's dials by name can bring the two together again.

use shubnet_tests::TestNode;
use shubnet_tests::cmd::{poll_until, run_cmd};
use shubnet_tests::fed::{connected_peers, create, join, json_of, request};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(40);
const NAME: &str = "lab-a.shubnet.test";

/// A namespace with a veth pair to the test's namespace; removed on drop.
struct Netns {
    name: String,
    host_if: String,
    subnet: String,
}

fn ip(args: &[&str]) {
    run_cmd(Command::new("ip").args(args)).ok();
}

impl Netns {
    fn create() -> Self {
        // Unique per test in this process (tests run in parallel threads) and across processes.
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let id = std::process::id() % 10_000 * 10 + NEXT.fetch_add(1, Ordering::Relaxed) % 10;
        let n = Netns {
            name: format!("shubnet-dns-{id}"),
            host_if: format!("sdh{}", id % 100_000),
            subnet: format!("10.231.{}", 20 + id % 200),
        };
        let peer_if = format!("sdn{}", id % 100_000);
        ip(&["netns", "add", &n.name]);
        ip(&[
            "link", "add", &n.host_if, "type", "veth", "peer", "name", &peer_if,
        ]);
        ip(&["link", "set", &peer_if, "netns", &n.name]);
        ip(&[
            "addr",
            "add",
            &format!("{}.1/24", n.subnet),
            "dev",
            &n.host_if,
        ]);
        ip(&["link", "set", &n.host_if, "up"]);
        ip(&[
            "-n",
            &n.name,
            "addr",
            "add",
            &format!("{}.2/24", n.subnet),
            "dev",
            &peer_if,
        ]);
        ip(&["-n", &n.name, "link", "set", &peer_if, "up"]);
        ip(&["-n", &n.name, "link", "set", "lo", "up"]);
        n
    }

    fn addr(&self, host: u8) -> String {
        format!("{}.{host}", self.subnet)
    }

    fn hosts_file(&self) -> PathBuf {
        PathBuf::from("/etc/netns").join(&self.name).join("hosts")
    }

    /// Points NAME at `addr` inside the namespace. Written in place: `ip netns exec` bind-mounts
    /// this file, so a running process sees a rewrite of the same inode, not a replaced file.
    fn name_points_at(&self, addr: &str) {
        let path = self.hosts_file();
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir /etc/netns/NS");
        std::fs::write(&path, format!("127.0.0.1 localhost\n{addr} {NAME}\n"))
            .expect("writing the namespace's hosts file");
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        let _ = std::fs::remove_dir_all(PathBuf::from("/etc/netns").join(&self.name));
    }
}

fn free_port(ip: &str) -> u16 {
    TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn connected(node: &TestNode, peer: &str) -> bool {
    connected_peers(node).iter().any(|p| p == peer)
}

fn peer_id(node: &TestNode) -> String {
    json_of(&node.cli(&["keys", "show", "--json"]).ok())["peer_id"]
        .as_str()
        .expect("peer id")
        .to_string()
}

#[test]
fn a_member_bootstrapped_by_name_connects_and_finds_the_peer_again_after_it_moves() {
    let ns = Netns::create();
    let (a_ip, b_ip, moved_ip) = (ns.addr(1), ns.addr(2), ns.addr(3));
    let port = free_port(&a_ip).to_string();
    ns.name_points_at(&a_ip);

    let mut a =
        TestNode::start_in_netns(None, &a_ip, &["--p2p", &format!("/ip4/{a_ip}/tcp/{port}")]);
    let a_peer = peer_id(&a);
    let boot = format!("/dns4/{NAME}/tcp/{port}/p2p/{a_peer}");
    let b = TestNode::start_in_netns(Some(&ns.name), &b_ip, &["--bootstrap", &boot]);
    let b_peer = peer_id(&b);

    let id = create(&a, "Fed", "lab-a");
    let line = request(&b, "lab-b");
    a.cli(&["federation", "admit", &line]).ok();
    join(&b, &id, a.url()).ok();
    poll_until(WAIT, "B connected to A through the name", || {
        connected(&b, &a_peer).then_some(())
    });
    let stored = std::fs::read_to_string(b.data_dir().join("p2p.peers")).unwrap_or_default();
    assert!(
        stored.contains(&format!("/dns4/{NAME}/")),
        "B keeps the name: {stored}"
    );

    // A goes away: B's redials fail, and say so at the default log level, with why.
    a.stop();
    ip(&["addr", "del", &format!("{a_ip}/24"), "dev", &ns.host_if]);
    poll_until(WAIT, "a WARN on B for the undialable member", || {
        b.log_text()
            .lines()
            .any(|l| l.contains("WARN") && l.contains("cannot dial peer") && l.contains(&a_peer))
            .then_some(())
    });

    // A comes back at a new address under the same name (deleting a subnet's primary address
    // drops its secondaries too, so the old one went first).
    ip(&["addr", "add", &format!("{moved_ip}/24"), "dev", &ns.host_if]);
    ns.name_points_at(&moved_ip);
    a.set_netns(None, &moved_ip);
    a.set_args(&["--p2p", &format!("/ip4/{moved_ip}/tcp/{port}")]);
    a.restart();
    assert_eq!(peer_id(&a), a_peer);
    poll_until(WAIT, "B reconnected to A at its new address", || {
        connected(&b, &a_peer).then_some(())
    });
    assert!(connected(&a, &b_peer), "A sees B's connection");
}

#[test]
fn an_unresolvable_bootstrap_name_is_a_warning_with_the_reason() {
    let ns = Netns::create();
    ns.name_points_at(&ns.addr(1));
    let peer = "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN";
    let b = TestNode::start_in_netns(
        Some(&ns.name),
        &ns.addr(2),
        &[
            "--bootstrap",
            &format!("/dns4/nowhere.shubnet.test/tcp/4001/p2p/{peer}"),
        ],
    );
    poll_until(WAIT, "a WARN naming the unresolvable name", || {
        b.log_text()
            .lines()
            .any(|l| l.contains("WARN") && l.contains("nowhere.shubnet.test"))
            .then_some(())
    });
}
