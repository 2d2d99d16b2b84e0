//! Nonblocking requests through real jobs: isend/irecv exchanges with receives posted after the
//! sends, wait_any draining, test polling, requests left unwaited or leaked at scope end.

mod util;

use util::rank_case;

const ALL_SIZES: &[&str] = &["1", "64", "4096", "65536", "65537", "1048576", "16777216"];

fn nb(n: usize, case: &str) {
    rank_case("t_nb", n, case, &[], &[]);
}

#[test]
fn exchange_among_4_ranks_every_size_receives_posted_late() {
    rank_case("t_nb", 4, "exchange", ALL_SIZES, &[]);
}

#[test]
fn exchange_among_8_ranks_every_size_receives_posted_late() {
    rank_case("t_nb", 8, "exchange", ALL_SIZES, &[]);
}

#[test]
fn exchange_of_16_mib_messages_with_everything_rendezvous() {
    rank_case(
        "t_nb",
        4,
        "exchange",
        &["0", "1", "16777216", "16777216"],
        &[("MPR_EAGER_LIMIT", "0")],
    );
}

#[test]
fn exchange_many_small_messages_all_eager() {
    let sizes: Vec<String> = (0..200).map(|i| (i * 37 % 3000).to_string()).collect();
    let sizes: Vec<&str> = sizes.iter().map(String::as_str).collect();
    rank_case("t_nb", 4, "exchange", &sizes, &[]);
}

#[test]
fn wait_any_drains_in_completion_order() {
    nb(6, "waitany");
}

#[test]
fn test_polls_without_blocking_while_the_peer_is_late() {
    nb(2, "testpoll");
}

#[test]
fn requests_left_unwaited_complete_by_scope_end() {
    nb(2, "unwaited");
}

#[test]
fn forgotten_requests_complete_by_scope_end() {
    nb(2, "forget");
}

#[test]
fn issend_completes_only_when_matched() {
    nb(2, "issend");
}

#[test]
fn nonblocking_truncation() {
    nb(2, "truncate");
}

#[test]
fn a_panic_in_a_scope_waits_for_its_requests() {
    nb(2, "panic");
}

#[test]
fn nonblocking_collectives_on_1_to_8_ranks() {
    for n in [1, 2, 3, 5, 8] {
        nb(n, "icoll");
    }
}

#[test]
fn cancel_under_contention() {
    for n in [2, 4] {
        rank_case("t_nb", n, "cancel", &[], &[]);
    }
}

#[test]
fn wait_some_and_test_some_with_several_senders() {
    for n in [2, 4, 7] {
        rank_case("t_nb", n, "waitsome", &[], &[]);
    }
}

#[test]
fn sendrecv_replace_around_the_ring() {
    for n in [1, 2, 3] {
        rank_case("t_nb", n, "replace", &[], &[]);
    }
}

#[test]
fn mprobe_under_contention() {
    for n in [2, 4, 7] {
        rank_case("t_nb", n, "mprobe", &[], &[]);
    }
    rank_case("t_nb", 4, "mprobe", &[], &[("MPR_LOCAL", "unix")]);
}

#[test]
fn buffers_handed_back_and_reposted_10000_times() {
    for n in [2, 4] {
        rank_case("t_nb", n, "handback", &[], &[]);
    }
}

#[test]
fn receives_of_unknown_size_on_every_local_path() {
    for n in [2, 4] {
        rank_case("t_nb", n, "irecv_vec", &[], &[]);
    }
    for local in ["unix", "tcp"] {
        rank_case("t_nb", 3, "irecv_vec", &[], &[("MPR_LOCAL", local)]);
    }
}
