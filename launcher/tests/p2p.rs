//! Point-to-point through real jobs started by the built mprun.

mod util;

use util::p2p_case;

#[test]
fn every_size_class_round_trips() {
    p2p_case(2, "sizes", &[]);
}

#[test]
fn every_size_class_round_trips_all_rendezvous() {
    p2p_case(2, "sizes", &[("MPR_EAGER_LIMIT", "0")]);
}

#[test]
fn every_size_class_round_trips_large_eager() {
    p2p_case(
        2,
        "sizes",
        &[("MPR_EAGER_LIMIT", "16777216"), ("MPR_SPIN_US", "0")],
    );
}

/// The TCP path between ranks of one host, which ranks on different hosts use.
#[test]
fn every_size_class_round_trips_over_tcp() {
    p2p_case(2, "sizes", &[("MPR_LOCAL", "tcp")]);
    p2p_case(
        2,
        "sizes",
        &[("MPR_LOCAL", "tcp"), ("MPR_EAGER_LIMIT", "0")],
    );
}

/// Large messages through the local socket instead of copied between the processes.
#[test]
fn every_size_class_round_trips_without_single_copy() {
    p2p_case(2, "sizes", &[("MPR_PULL", "0")]);
}

#[test]
fn ranks_of_one_host_talk_through_shared_memory_and_copy_large_messages_directly() {
    util::rank_case("t_p2p", 3, "local_path", &["shm", "copy"], &[]);
    util::rank_case(
        "t_p2p",
        3,
        "local_path",
        &["shm", "socket"],
        &[("MPR_PULL", "0")],
    );
    util::rank_case(
        "t_p2p",
        3,
        "local_path",
        &["unix", "copy"],
        &[("MPR_LOCAL", "unix")],
    );
    util::rank_case(
        "t_p2p",
        3,
        "local_path",
        &["unix", "socket"],
        &[("MPR_LOCAL", "unix"), ("MPR_PULL", "0")],
    );
    util::rank_case(
        "t_p2p",
        3,
        "local_path",
        &["tcp", "socket"],
        &[("MPR_LOCAL", "tcp")],
    );
}

#[test]
fn wildcards() {
    p2p_case(4, "wildcards", &[]);
}

#[test]
fn ten_thousand_messages_arrive_in_order() {
    p2p_case(2, "order", &[]);
}

#[test]
fn probe_and_recv_vec() {
    p2p_case(3, "probe", &[]);
    p2p_case(2, "probe", &[("MPR_EAGER_LIMIT", "0")]);
}

#[test]
fn ssend_waits_for_the_matching_receive() {
    p2p_case(2, "ssend", &[]);
}

#[test]
fn truncation_consumes_the_message_and_the_next_receive_works() {
    p2p_case(2, "truncate", &[]);
}

#[test]
fn invalid_ranks_are_errors() {
    p2p_case(3, "invalid", &[]);
}

#[test]
fn sendrecv_ring_shift() {
    p2p_case(5, "sendrecv", &[]);
}

#[test]
fn send_to_self() {
    p2p_case(2, "selfsend", &[]);
}

#[test]
fn ring_of_16_ranks_oversubscribed() {
    p2p_case(16, "ring", &[]);
}

#[test]
fn messages_sent_before_exit_are_delivered() {
    p2p_case(2, "flush", &[]);
}

#[test]
fn simultaneous_first_contact_between_all_pairs() {
    p2p_case(8, "connect_all", &[]);
    p2p_case(7, "connect_all", &[("MPR_SPIN_US", "0")]);
}

#[test]
fn barrier_holds_everyone() {
    for n in [1, 2, 3, 5, 8] {
        p2p_case(n, "barrier", &[]);
    }
}

#[test]
fn singleton_world_without_mprun() {
    let prog = util::rank_program("t_p2p");
    let out = util::run_cmd(
        prog,
        &["singleton"],
        &[],
        None,
        std::time::Duration::from_secs(30),
    );
    assert!(out.ok().contains("ok singleton"), "{out:?}");
}
