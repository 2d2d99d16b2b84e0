//! Collectives through real jobs: every collective against a serial reference, for 1 to 9 ranks
//! (powers of two and not), every root at small sizes, 0 B to 4 MiB.

mod util;

use util::rank_case;

/// Every collective by message, also on one host (not through the shared segment), for the
/// tests of the message algorithms.
const OFF: (&str, &str) = ("MPR_NODE_COLL", "0");

fn coll(n: usize) {
    rank_case("t_coll", n, "coll", &[], &[]);
}

#[test]
fn collectives_on_1_rank() {
    coll(1);
}

#[test]
fn collectives_on_2_ranks() {
    coll(2);
}

#[test]
fn collectives_on_3_ranks() {
    coll(3);
}

#[test]
fn collectives_on_4_ranks_with_4_mib_vectors() {
    rank_case("t_coll", 4, "coll", &["big"], &[]);
}

#[test]
fn collectives_on_5_ranks() {
    coll(5);
}

#[test]
fn collectives_on_6_ranks() {
    coll(6);
}

#[test]
fn collectives_on_7_ranks_with_4_mib_vectors() {
    rank_case("t_coll", 7, "coll", &["big"], &[]);
}

#[test]
fn collectives_on_8_ranks() {
    coll(8);
}

#[test]
fn collectives_on_9_ranks() {
    coll(9);
}

#[test]
fn rabenseifner_allreduce_at_every_size_on_3_5_6_8_ranks() {
    for n in [3, 5, 6, 8] {
        rank_case(
            "t_coll",
            n,
            "coll",
            &[],
            &[("MPR_ALLREDUCE_LARGE", "0"), OFF],
        );
    }
}

#[test]
fn recursive_doubling_allreduce_at_every_size() {
    rank_case(
        "t_coll",
        6,
        "coll",
        &["big"],
        &[("MPR_ALLREDUCE_LARGE", "18446744073709551615"), OFF],
    );
}

#[test]
fn tree_algorithms_when_flat_ones_are_off() {
    rank_case("t_coll", 8, "coll", &[], &[("MPR_FLAT_RANKS", "0"), OFF]);
}

#[test]
fn scatter_allgather_broadcast_at_every_size() {
    for n in [3, 4, 7] {
        rank_case(
            "t_coll",
            n,
            "coll",
            &["big"],
            &[("MPR_BCAST_LARGE", "0"), OFF],
        );
    }
}

#[test]
fn collectives_by_message_when_shared_memory_is_off() {
    for n in [2, 5, 8] {
        rank_case("t_coll", n, "coll", &[], &[OFF]);
    }
}

/// Through the shared segment every rank sees every rank's length, so all of them can answer
/// with an error and carry on. (By message, only the ranks that receive a wrong length can.)
#[test]
fn mismatched_lengths_are_errors_on_every_rank_through_shared_memory() {
    for n in [2, 3, 8] {
        rank_case("t_coll", n, "disagree", &[], &[]);
    }
}

/// MPR_CHECK=1: a collective called differently at one rank (root, operator, length, which
/// collective, element type) is an error at every rank naming that rank, through shared memory
/// and by message; without the check some ranks would error and the others hang.
#[test]
fn mpr_check_names_the_rank_whose_collective_differs() {
    for n in [3, 4] {
        rank_case("t_coll", n, "signature", &[], &[("MPR_CHECK", "1")]);
        rank_case(
            "t_coll",
            n,
            "signature",
            &[],
            &[("MPR_CHECK", "1"), ("MPR_NODE_COLL", "0")],
        );
    }
}

/// MPR_CHECK=1 finds nothing wrong in correct programs: every collective at every size and
/// root still passes.
#[test]
fn collectives_pass_their_signature_check() {
    for n in [3, 5] {
        rank_case("t_coll", n, "coll", &[], &[("MPR_CHECK", "1")]);
    }
}
