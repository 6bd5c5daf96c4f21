"""The suite's own rules, checked without the peers or a built Courbe (standard library only):

    python3 -m unittest discover -s benches/peers -p 'test_*.py'
"""

import os
import tempfile
import unittest

import peers

ENEDIS = os.path.join(peers.ROOT, "tests", "data", "enedis", "Enedis_SGE_HDM_A06NW0ZI.csv")


class Agreement(unittest.TestCase):
    def test_a_row_with_a_missing_cell_is_a_disagreement_not_a_truncated_match(self):
        courbe = [(1_704_063_600, 5_995, 1_706_400_000)]
        peer = [(1_704_063_600, 5_995)]
        self.assertIsNotNone(peers.agree(courbe, peer, "Q3"))
        self.assertIsNotNone(peers.agree(peer, courbe, "Q3"))

    def test_a_missing_row_is_a_disagreement(self):
        rows = [(1_704_063_600 + 1_800 * i, 100 + i) for i in range(48)]
        self.assertIsNotNone(peers.agree(rows, rows[:-1], "Q1"))
        self.assertIsNotNone(peers.agree(rows[1:], rows, "Q1"))

    def test_equal_answers_of_other_shapes_agree(self):
        courbe = [(1_704_063_600, 59_635.0), (1_704_150_000, 53_838.5)]
        peer = [[1_704_063_600, 59_635], [1_704_150_000, 53_838.5]]
        self.assertIsNone(peers.agree(courbe, peer, "Q2"))

    def test_only_a_courbe_period_of_zero_energy_stands_for_a_missing_peer_row(self):
        peer = [("09111642617347", 1_704_063_600, 1_604_004.0)]
        zero = peer + [("09111642617347", 1_706_742_000, 0.0)]
        some = peer + [("09111642617347", 1_706_742_000, 12.5)]
        self.assertIsNone(peers.agree(zero, peer, "Q5", zero_is_missing=True))
        self.assertIsNotNone(peers.agree(some, peer, "Q5", zero_is_missing=True))
        self.assertIsNotNone(peers.agree(zero, peer, "Q5"))


class FetchWays(unittest.TestCase):
    def test_two_ways_of_fetching_an_unordered_answer_agree_whatever_the_row_order(self):
        rows = [("09111642617347", 1_704_063_600, 1.5), ("09143058543884", 1_704_063_600, 2.0)]
        got, _, best, ms = peers.fastest_answers(
            "Q5", {"a": lambda: list(rows), "b": lambda: list(reversed(rows))}, 2)
        self.assertEqual(sorted(got), sorted(rows))
        self.assertEqual(set(ms), {"a", "b"})
        self.assertIn(best, ms)

    def test_two_ways_of_fetching_that_differ_stop_the_suite(self):
        with self.assertRaises(SystemExit):
            peers.fastest_answers("Q1", {"a": lambda: [(1, 2)], "b": lambda: [(1, 3)]}, 1)


class Counts(unittest.TestCase):
    def test_a_system_that_loaded_another_number_of_points_fails_the_suite(self):
        expected = {"points": 17_376, "meters": 1}
        results = {"courbe": {"points": 17_376, "meters": 1},
                   "duckdb": {"points": 17_375, "meters": 1}}
        wrong = peers.check_counts(expected, results, ["courbe", "duckdb"])
        self.assertEqual(len(wrong), 1)
        self.assertIn("duckdb", wrong[0])

    def test_equal_counts_pass(self):
        expected = {"points": 10, "meters": 2}
        results = {s: dict(expected) for s in ("courbe", "duckdb", "clickhouse")}
        self.assertEqual(peers.check_counts(expected, results, list(results)), [])


class FreshStores(unittest.TestCase):
    def test_a_store_dir_with_data_of_an_earlier_run_is_emptied(self):
        with tempfile.TemporaryDirectory() as tmp:
            store = os.path.join(tmp, "courbe")
            os.makedirs(os.path.join(store, "governance"))
            with open(os.path.join(store, "seg-00000000000000000001.seg"), "wb") as f:
                f.write(b"old")
            self.assertEqual(peers.fresh_dir(store), store)
            self.assertFalse(os.path.exists(store))

    def test_a_non_empty_work_dir_that_is_not_the_suites_is_refused(self):
        with tempfile.TemporaryDirectory() as tmp:
            with open(os.path.join(tmp, "notes.txt"), "w") as f:
                f.write("someone else's")
            with self.assertRaises(SystemExit):
                peers.prepare_work(tmp)
            self.assertTrue(os.path.exists(os.path.join(tmp, "notes.txt")))

    def test_an_empty_or_marked_work_dir_is_accepted(self):
        with tempfile.TemporaryDirectory() as tmp:
            peers.prepare_work(tmp)
            with open(os.path.join(tmp, "fleet.csv"), "w") as f:
                f.write("meter_id,ts,value_w,quality,step_min\n")
            peers.prepare_work(tmp)
            self.assertTrue(os.path.exists(os.path.join(tmp, peers.WORK_MARKER)))


class Questions(unittest.TestCase):
    def test_the_fleet_day_lies_inside_the_span(self):
        self.assertEqual(peers.fleet_day(365)[:2], ("2024-06-15", "2024-06-16"))
        self.assertEqual(peers.fleet_day(365)[2:], ("2024-06-14 22:00:00", "2024-06-15 22:00:00"))
        self.assertEqual(peers.fleet_day(31)[0], "2024-01-16")
        self.assertEqual(peers.fleet_day(31)[2], "2024-01-15 23:00:00")

    def test_courbe_answers_decode_to_the_peers_rows(self):
        body = (b'{"runs":[{"start":"2023-12-31T23:00:00Z","step_min":30,"values":[2250,2469]},'
                b'{"start":"2024-01-01T01:00:00Z","step_min":60,"values":[7]}]}')
        self.assertEqual(peers.courbe_q1(body),
                         [(1_704_063_600, 2250), (1_704_065_400, 2469), (1_704_070_800, 7)])
        body = (b'{"periods":[{"start":"2023-12-31T23:00:00Z","value":5995,'
                b'"at":"2024-01-28T00:00:00Z"},{"start":"2024-01-31T23:00:00Z","value":null,'
                b'"at":null}]}')
        self.assertEqual(peers.courbe_q3(body), [(1_704_063_600, 5995, 1_706_400_000)])


class Enedis(unittest.TestCase):
    def test_the_enedis_export_converts_to_one_point_per_value_with_its_step(self):
        with open(ENEDIS, encoding="utf-8-sig") as f:
            lines = f.read().splitlines()
        values = [line for line in lines[lines.index("Horodate;Valeur") + 1:]
                  if line and not line.endswith(";")]
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "native.csv")
            written = peers.enedis_to_native(ENEDIS, out)
            with open(out) as f:
                rows = [line.split(",") for line in f.read().splitlines()[1:]]
        self.assertEqual(written, len(values))
        self.assertEqual(len(rows), written)
        self.assertEqual({r[4] for r in rows}, {"60", "30"})
        # The first value ends at 2021-01-07T14:00:00+01:00 after an hour: it starts at 12:00 UTC.
        self.assertEqual(rows[0][:3], ["09111642617347", "2021-01-07T12:00:00Z", "1061"])
        starts = [peers.epoch(r[1]) for r in rows]
        self.assertEqual(starts, sorted(set(starts)))


if __name__ == "__main__":
    unittest.main()
