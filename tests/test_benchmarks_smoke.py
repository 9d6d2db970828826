"""The evaluation benchmark runs end to end at its smallest settings and prints its table."""
from benchmarks import evaluation as bench


def test_evaluation_benchmark_prints_a_row_per_embedder(capsys):
    assert bench.main(["--clips", "2", "--repeats", "1", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ")]
    header, body = rows[0], rows[1:]
    assert "end-to-end / model-only" in header and "model-only" in header
    names = [row.split("|")[1].strip() for row in body]
    assert names == ["panns", "vggish", "passt", "imagebind audio", "imagebind video",
                     "synchformer audio", "synchformer video"]
    for name, row in zip(names, body):
        assert "clips/s" in row, row
        if "video" not in name:  # audio rows: the side-by-side ratio was measured
            assert ("met" in row) and ("rounds" in row), row
    assert "cpu:" in out and "torch" in out  # the machine line
