//! Issue 2, listeners as a Postfix administrator expects them:
//! `inet_interfaces` decides where a bare port listens, and with
//! `inet_protocols = all` an IPv6 address the host cannot bind is skipped
//! with a warning (README command 1 on an IPv4-only host); delivery keeps
//! to the IP versions `inet_protocols` enables.
//!
//! The IPv6 address used is `2001:db8::1` (RFC 3849 documentation prefix),
//! configured on no interface: binding it fails locally with
//! `EADDRNOTAVAIL` and sends nothing anywhere. Nothing connects to it.

mod common;
mod ground_support;

use common::tools::Swaks;
use ground_support::{Tern, WAIT};

#[test]
fn bare_port_with_loopback_only_listens_on_loopback_only() {
    let mut t = Tern::new("");
    t.write_config(&format!(
        "inet_interfaces = loopback-only\nsmtp_listen = {}\n",
        t.port
    ));
    t.start();
    let log = t.log();
    let listening: Vec<&str> = log.lines().filter(|l| l.contains("listening on")).collect();
    assert!(
        listening
            .iter()
            .any(|l| l.contains(&format!("listening on 127.0.0.1:{} (smtp)", t.port))),
        "{log}"
    );
    // ::1 where the host has IPv6, else skipped with a warning.
    let v6 = format!("[::1]:{}", t.port);
    let v6_listening = listening.iter().any(|l| l.contains(&v6));
    assert!(
        v6_listening || log.contains(&format!("warning: smtp_listen: cannot listen on {v6}")),
        "{log}"
    );
    assert_eq!(
        listening.len(),
        1 + usize::from(v6_listening),
        "loopback addresses only:\n{log}"
    );
    assert!(
        !log.contains("0.0.0.0") && !log.contains("[::]"),
        "no wildcard listener:\n{log}"
    );
    assert!(Swaks::new(t.port).run().ok(), "mail on 127.0.0.1");
    assert_eq!(t.stop_with(libc::SIGTERM).code(), Some(0));
}

#[test]
fn ipv6_address_the_host_cannot_bind_is_skipped_with_inet_protocols_all() {
    let mut t = Tern::new("");
    t.write_config(&format!(
        "smtp_listen = 127.0.0.1:{p} [2001:db8::1]:{p}\n",
        p = t.port
    ));
    t.start();
    let log = t.wait_log(
        &format!(
            "warning: smtp_listen: cannot listen on [2001:db8::1]:{}",
            t.port
        ),
        1,
        WAIT,
    );
    assert!(log.contains("skipped (inet_protocols = all"), "{log}");
    assert!(
        log.contains(&format!("listening on 127.0.0.1:{} (smtp)", t.port)),
        "{log}"
    );
    let r = Swaks::new(t.port).run();
    assert!(r.ok(), "still serves on IPv4:\n{}", r.transcript);
    assert!(t.running());
    assert_eq!(t.stop_with(libc::SIGTERM).code(), Some(0));
}

#[test]
fn with_an_explicit_protocol_list_every_listener_must_bind() {
    let t = Tern::new("");
    t.write_config(&format!(
        "inet_protocols = ipv4, ipv6\nsmtp_listen = 127.0.0.1:{p} [2001:db8::1]:{p}\n",
        p = t.port
    ));
    let out = t.run(&["run", "-f"], None);
    assert!(!out.timed_out, "tern run should fail at start-up: {out:?}");
    assert_ne!(out.status, Some(0), "{out:?}");
    assert!(
        out.combined().contains(&format!(
            "smtp_listen: cannot listen on [2001:db8::1]:{}",
            t.port
        )),
        "{out:?}"
    );
}

#[test]
fn a_service_with_no_bindable_address_fails_start_up() {
    let t = Tern::new("");
    t.write_config(&format!("smtp_listen = [2001:db8::1]:{}\n", t.port));
    let out = t.run(&["run", "-f"], None);
    assert!(!out.timed_out, "tern run should fail at start-up: {out:?}");
    assert_ne!(out.status, Some(0), "{out:?}");
    assert!(
        out.combined()
            .contains("smtp_listen: no address could be bound"),
        "{out:?}"
    );
}

#[test]
fn check_config_refuses_an_address_of_a_disabled_ip_version() {
    let t = Tern::new("");
    t.write_config("inet_protocols = ipv4\nsubmission_listen = [::1]:587\nsmtpd_sasl_password_file = /nonexistent\n");
    let out = t.run(&["check-config"], None);
    assert_eq!(out.status, Some(1), "{out:?}");
    assert!(
        out.combined()
            .contains("submission_listen: ::1 is an IPv6 address, but inet_protocols = ipv4"),
        "{out:?}"
    );
}

#[test]
fn delivery_never_connects_to_a_disabled_ip_version() {
    // Nothing listens there; with inet_protocols = all the attempt would
    // end in "connect to ... Connection refused".
    let dead = common::ports::free_port();
    let mut t = Tern::new(&format!(
        "inet_protocols = ipv4\nrelayhost = [ipv6:::1]:{dead}\n"
    ));
    t.start();
    let r = Swaks::new(t.port).run();
    assert!(r.ok(), "{}", r.transcript);
    let log = t.wait_log("status=deferred", 1, WAIT);
    assert!(
        log.contains("no address of the IP versions enabled by inet_protocols = ipv4"),
        "{log}"
    );
    assert!(!log.contains("connect to"), "no connection attempt:\n{log}");
    assert_eq!(t.stop_with(libc::SIGTERM).code(), Some(0));
}

/// README command 1 on a host without IPv6: `tern run -f --dev` in a
/// network namespace of its own (so 2525 is free whatever else runs here)
/// with IPv6 disabled on every interface. Needs `unshare -rn` (user and
/// network namespaces) and `ip`; where the kernel refuses namespaces the
/// test says so and checks nothing.
#[test]
fn dev_config_serves_on_a_host_without_ipv6() {
    let probe = std::process::Command::new("unshare")
        .args(["-rn", "true"])
        .status();
    if !matches!(probe, Ok(st) if st.success()) {
        eprintln!("SKIP dev_config_serves_on_a_host_without_ipv6: no user/network namespaces here ({probe:?})");
        return;
    }
    let dir = common::tempdir::TempDir::new("ground-v4only");
    let script = r#"
        set -u
        ip link set lo up || exit 90
        sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 \
            net.ipv6.conf.lo.disable_ipv6=1 || exit 91
        "$TERN" run -f --dev > daemon.out 2>&1 &
        pid=$!
        i=0
        until swaks --server 127.0.0.1:2525 --to someone@example.net --timeout 10 > swaks.out 2>&1; do
            kill -0 "$pid" 2>/dev/null || exit 92
            i=$((i + 1))
            if [ "$i" -ge 150 ]; then kill -TERM "$pid"; exit 93; fi
            sleep 0.2
        done
        kill -TERM "$pid"
        wait "$pid"
        echo "tern exit $?"
    "#;
    let mut c = std::process::Command::new("unshare");
    c.args(["-rn", "sh", "-c", script])
        .env("TERN", ground_support::TERN)
        .current_dir(dir.path());
    let out = common::process::run(c, None, std::time::Duration::from_secs(90));
    let daemon = common::tempdir::read_lossy(&dir.join("daemon.out"));
    let swaks = common::tempdir::read_lossy(&dir.join("swaks.out"));
    let all = format!("{out:?}\n--- daemon\n{daemon}\n--- swaks\n{swaks}");
    assert_eq!(out.status, Some(0), "{all}");
    assert!(
        out.stdout.contains("tern exit 0"),
        "clean SIGTERM exit: {all}"
    );
    assert!(
        daemon.contains("warning: smtp_listen: cannot listen on [::1]:2525")
            && daemon.contains("skipped (inet_protocols = all"),
        "{all}"
    );
    assert!(
        daemon.contains("listening on 127.0.0.1:2525 (smtp)"),
        "{all}"
    );
    assert!(swaks.contains("queued as"), "{all}");
}
