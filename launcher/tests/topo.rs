//! Process topologies, no-rank peers and groups, through the real mprun: Cartesian grids from
//! `dims_create` with and without periods at 1 to 12 ranks (shifts against a model, exchanges
//! with the neighbours, sub-grids, bad grids refused on every rank), every point-to-point call
//! with `PROC_NULL`, neighbour collectives on rings, tori, open grids and a graph, persistent requests started 10,000 times, group algebra against a model with `create` and `compare`, and
//! `split_type_shared` on one host (across testnet hosts: `hosts.rs`).

mod util;

use util::rank_case;

#[test]
fn cartesian_grids_at_1_to_12_ranks() {
    for n in 1..=12 {
        rank_case("t_topo", n, "cart", &[], &[]);
    }
}

#[test]
fn sends_and_receives_with_no_rank_complete_at_once() {
    for n in [1, 2, 3] {
        rank_case("t_topo", n, "null", &[], &[]);
    }
}

#[test]
fn groups_against_a_model_and_communicators_made_of_them() {
    for n in [1, 2, 4, 7] {
        rank_case("t_topo", n, "groups", &[], &[]);
    }
}

#[test]
fn persistent_requests_started_10000_times() {
    for n in [1, 2, 3, 4] {
        rank_case("t_topo", n, "persistent", &[], &[]);
    }
}

#[test]
fn neighbour_collectives_on_rings_tori_grids_and_graphs() {
    for n in [1, 2, 3, 4, 6, 7] {
        rank_case("t_topo", n, "neighbors", &[], &[]);
    }
}

#[test]
fn the_ranks_of_one_host_share_it() {
    for n in [1, 3, 4] {
        rank_case("t_topo", n, "shared", &["one"], &[]);
    }
}
