"""BIF reading and writing: the files in tests/data, round trips, strict errors, pgmpy interop
(pgmpy reads our BIF and gives the same exact answers on the 40-node network)."""

import numpy as np
import pytest

from mcgen import bayesnet
from tests.bayesnet.bn_testutils import DATA, asia, random40, weather


def _same(a: bayesnet.BayesNet, b: bayesnet.BayesNet) -> bool:
    return (
        a.variables == b.variables
        and a.states == b.states
        and a.parents == b.parents
        and all(np.array_equal(a.cpts[v], b.cpts[v]) for v in a.variables)
    )


def test_weather_file_has_the_issue_cpts():
    bn = weather()
    assert bn.name == "weather" and bn.variables == ("cloudy", "sprinkler", "rain", "wet_grass")
    assert bn.cpts["sprinkler"].tolist() == [[0.1, 0.9], [0.5, 0.5]]
    assert bn.cpts["rain"].tolist() == [[0.8, 0.2], [0.2, 0.8]]
    assert bn.cpts["wet_grass"][:, :, 0].tolist() == [[0.99, 0.9], [0.9, 0.01]]


def test_asia_file():
    bn = asia()
    assert len(bn) == 8 and bn.parents["dysp"] == ("bronc", "either")
    assert bn.cpts["either"][:, :, 0].tolist() == [[1.0, 1.0], [1.0, 0.0]]


@pytest.mark.parametrize("make", [weather, asia, random40])
def test_round_trip_is_exact(make, tmp_path):
    bn = make()
    assert _same(bayesnet.parse_bif(bn.to_bif()), bn)
    bn.write_bif(tmp_path / "x.bif")
    assert _same(bayesnet.read_bif(tmp_path / "x.bif"), bn)


def test_table_form_default_rows_comments_and_quotes():
    # JavaBayes style: no commas or bars, quoted names, `table` with parents (child slowest).
    text = """
    /* a block
       comment */ network "dog problem" { property "author = x"; }
    variable "bowel-problem" { type discrete [ 2 ] { "true" "false" }; property "position = (1, 2)"; }
    variable "family-out" { type discrete[2] { true false }; }
    variable "dog-out" { type discrete [ 2 ] { true false }; }  // trailing comment
    probability ( "bowel-problem" ) { table .01 .99; }
    probability ( "family-out" ) { table 0.15 0.85 ; }
    probability ( "dog-out" "bowel-problem" "family-out" ) {
        table 0.99 0.97 0.9 0.3 0.01 0.03 0.1 0.7 ;
    }
    """
    bn = bayesnet.parse_bif(text)
    assert bn.name == "dog problem"
    assert bn.parents["dog-out"] == ("bowel-problem", "family-out")
    np.testing.assert_allclose(bn.cpts["dog-out"][:, :, 0], [[0.99, 0.97], [0.9, 0.3]])
    with_default = bayesnet.parse_bif("""
    variable a { type discrete [ 3 ] { x, y, z }; }
    variable b { type discrete [ 2 ] { u, v }; }
    probability ( a ) { table 0.2, 0.3, 0.5; }
    probability ( b | a ) { (y) 0.9, 0.1; default 0.5, 0.5; }
    """)
    assert with_default.cpts["b"].tolist() == [[0.5, 0.5], [0.9, 0.1], [0.5, 0.5]]
    assert _same(bayesnet.parse_bif(bn.to_bif()), bn)  # quoted names are written back quoted


HEAD = "variable a { type discrete [ 2 ] { x, y }; }\nvariable b { type discrete [ 2 ] { u, v }; }\n"
PA = "probability ( a ) { table 0.5, 0.5; }\n"


@pytest.mark.parametrize(
    "text, line, pattern",
    [
        ("variable a { type discrete [ 2 ] { x, y } }", 1, r"expected ';', got '}'"),
        ("variable a { type discrete [ 3 ] { x, y }; }", 1, r"'a' declares 3 states but lists 2"),
        ("variable a { type continuous [ 2 ] { x, y }; }", 1, r"only 'type discrete'"),
        (
            "variable a {\n type discrete [ 2 ] { x, y };\n size 3; }",
            3,
            r"expected 'type', 'property' or '}', got 'size'",
        ),
        (
            HEAD + PA + "probability ( b | a ) {\n (x) 0.5, 0.5;\n (y) 0.5; }",
            6,
            r"row \('y',\) of 'b' has 1 numbers, expected 2",
        ),
        (HEAD + PA + "probability ( b | a ) {\n (x) 0.5, 0.5;\n (w) 0.5, 0.5; }", 6, r"'w' is not a state of 'a'"),
        (HEAD + PA + "probability ( b | a ) {\n (x) 0.5, 0.5; }", 4, r"gives no row for parents \('y',\)"),
        (
            HEAD + PA + "probability ( b | a ) {\n (x) 0.5, 0.5;\n (x) 0.5, 0.5; (y) 1, 0; }",
            6,
            r"row \('x',\) of 'b' is given twice",
        ),
        (
            HEAD + PA + "probability ( b | a ) { table 0.5, 0.5, 1e0, 0x10; }",
            4,
            r"expected a number or ';', got '0x10'",
        ),
        (HEAD + PA + "probability ( b | c ) { table 0.5, 0.5; }", 4, r"undeclared variable 'c'"),
        (HEAD + PA, 2, r"variable 'b' has no probability block"),
        (HEAD + PA + PA, 4, r"'a' has two probability blocks"),
        (HEAD + PA + "probability ( b | a ) { (x) 0.5, 0.5; (y) 0.5, 0.5; ", 4, r"expected .*got end of text"),
        (HEAD + "/* never closed", 3, r"unterminated block comment"),
        (HEAD + 'variable "c { }', 3, r"unterminated string"),
        (HEAD + "import os;", 3, r"expected 'variable' or 'probability', got 'import'"),
        (
            "network n { }\nvariable a { type discrete [ 2 ] { x, y }; }\nprobability ( a ) {\n table 0.5, 0.6; }",
            3,
            r"CPT row of 'a' for the only row sums to 1.1",
        ),
        (
            "network n { }\nvariable a { type discrete [ 2 ] { x, y }; }\nprobability ( a ) {\n table 1.5, -0.5; }",
            3,
            r"CPT of 'a' has a negative entry",
        ),
    ],
)
def test_malformed_bif_reports_line(text, line, pattern):
    with pytest.raises(bayesnet.BayesNetError, match=pattern) as err:
        bayesnet.parse_bif(text)
    assert str(err.value).startswith(f"line {line}:"), str(err.value)


def test_cycle_in_bif():
    text = HEAD + "probability ( a | b ) { (u) 0.5, 0.5; (v) 0.5, 0.5; }\nprobability ( b | a ) { (x) 1, 0; (y) 0, 1; }"
    with pytest.raises(bayesnet.CycleError, match="cycle"):
        bayesnet.parse_bif(text)


def test_pgmpy_interop(tmp_path):
    pytest.importorskip("pgmpy")
    from pgmpy.inference import VariableElimination
    from pgmpy.readwrite import BIFReader, BIFWriter

    bn = random40()
    model = BIFReader(string=bn.to_bif()).get_model()  # pgmpy reads what we write
    for v in ("n05", "n17", "n39"):
        cpd = model.get_cpds(v)
        ours = np.moveaxis(bn.cpts[v], -1, 0).reshape(len(bn.states[v]), -1)
        assert list(cpd.variables[1:]) == list(bn.parents[v])
        np.testing.assert_allclose(cpd.get_values(), ours)
    path = tmp_path / "asia_pgmpy.bif"  # and we read what pgmpy writes
    writer = BIFWriter(BIFReader(DATA / "asia.bif").get_model())
    (writer.write if hasattr(writer, "write") else writer.write_bif)(str(path))
    back = bayesnet.read_bif(path)
    a = asia()
    assert set(back.variables) == set(a.variables)
    for v in a.variables:
        assert set(back.parents[v]) == set(a.parents[v]) and back.states[v] == a.states[v]
        perm = [back.parents[v].index(p) for p in a.parents[v]] + [len(a.parents[v])]
        np.testing.assert_allclose(np.transpose(back.cpts[v], perm), a.cpts[v])
    ve = VariableElimination(model)  # and our exact answers agree with pgmpy's
    for query, evidence in [
        (["n00", "n20"], {"n39": "s0", "n35": "s1"}),
        (["n25"], {"n03": "s2", "n38": "s1"}),
        (["n12"], {}),
    ]:
        ours = bn.query(query, evidence)
        theirs = ve.query(query, evidence=evidence, joint=False, show_progress=False)
        for v in query:
            np.testing.assert_allclose(ours.probs[v], theirs[v].values, atol=1e-10)
