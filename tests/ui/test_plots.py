import numpy as np
import plotly.graph_objects as go
import pytest

from lucid.explain.explanation import make_explanation
from lucid.ui import plots
from lucid.ui.report import Report


@pytest.fixture
def table_expl():
    values = np.array([[0.5, -0.2, 0.05], [0.1, -0.4, 0.0], [0.3, 0.2, -0.1]])
    data = np.array([[1.0, 10.0, 3.0], [2.0, 20.0, 1.0], [3.0, 30.0, 2.0]])
    return make_explanation(
        values, np.array([-1.0, -1.0, -1.0]), data, feature_names=["age", "income", "debt"]
    )


@pytest.mark.parametrize(
    "builder", [plots.waterfall, plots.importance_bar, plots.beeswarm, plots.token_bar, plots.image_overlay]
)
def test_builders_refuse_non_explanations(builder):
    with pytest.raises(TypeError, match="shap.Explanation"):
        builder(np.zeros((2, 2)))


def test_waterfall_values_and_total(table_expl):
    fig = plots.waterfall(table_expl[0], max_display=2, units="log-odds")
    trace = fig.data[0]
    assert isinstance(trace, go.Waterfall)
    assert trace.y[0] == "Base value" and trace.x[0] == -1.0
    assert trace.y[1] == "1 other features" and trace.x[1] == pytest.approx(0.05)
    # Strongest feature last before the total.
    assert trace.y[-2] == "age = 1" and trace.x[-2] == pytest.approx(0.5)
    assert trace.y[-1] == "Output" and trace.x[-1] == pytest.approx(-1.0 + 0.35)
    assert fig.layout.xaxis.title.text == "log-odds"


def test_importance_bar_orders_by_mean_abs(table_expl):
    trace = plots.importance_bar(table_expl).data[0]
    assert list(trace.y) == ["debt", "income", "age"]  # largest at the top (last)
    assert trace.x[-1] == pytest.approx(0.3)
    assert trace.x[0] == pytest.approx(0.05)


def test_beeswarm_one_trace_per_feature_with_values(table_expl):
    fig = plots.beeswarm(table_expl)
    assert len(fig.data) == 3
    by_name = {t.name: t for t in fig.data}
    assert list(by_name["income"].x) == pytest.approx([-0.2, -0.4, 0.2])
    colours = np.asarray(by_name["income"].marker.color)
    assert colours[0] < colours[1] < colours[2]  # low income blue, high red


def test_dependence_plot(table_expl):
    trace = plots.dependence(table_expl, "income").data[0]
    assert list(trace.x) == [10.0, 20.0, 30.0]
    assert list(trace.y) == pytest.approx([-0.2, -0.4, 0.2])


def test_text_highlight_escapes_html():
    tokens = np.array(["<script>alert(1)</script>", " great", " & bad"], dtype=object)
    expl = make_explanation(np.array([0.0, 0.8, -0.4]), 0.1, tokens)
    out = plots.text_highlight_html(expl)
    assert "<script>" not in out
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out
    assert "&amp; bad" in out
    assert "rgba(214,39,40,0.850)" in out  # strongest positive token gets full red
    assert "rgba(31,119,180,0.425)" in out


def test_token_bar_signs():
    expl = make_explanation(np.array([0.2, -0.6]), 0.0, np.array(["good", "awful"], dtype=object))
    trace = plots.token_bar(expl).data[0]
    assert list(trace.x) == pytest.approx([0.2, -0.6])
    assert trace.marker.color[1] == plots.NEGATIVE


def test_image_overlay_layers():
    image = np.zeros((8, 10, 3), dtype=np.uint8)
    heat = np.zeros((8, 10))
    heat[2, 3] = 5.0
    fig = plots.image_overlay(make_explanation(heat, 0.0, image), opacity=0.3)
    assert isinstance(fig.data[0], go.Image) and isinstance(fig.data[1], go.Heatmap)
    assert fig.data[1].opacity == 0.3
    assert np.asarray(fig.data[1].z)[2, 3] == 5.0 and fig.data[1].zmax == 5.0
    with pytest.raises(ValueError):
        plots.image_overlay(make_explanation(np.zeros((4, 4)), 0.0, image))


def test_report_is_self_contained_and_escaped(table_expl):
    import pandas as pd

    report = Report("Review <b>2026</b>", subtitle="demo")
    report.add("Scores", text="Text with <script>x</script>", table=pd.DataFrame({"c": ["=1+1", "<i>"]}))
    report.add("Chart", figure=[plots.importance_bar(table_expl), plots.beeswarm(table_expl)])
    out = report.to_html()
    assert out.count("* plotly.js v") == 1  # plotly.js embedded once
    assert "Review &lt;b&gt;2026&lt;/b&gt;" in out
    assert "<script>x</script>" not in out and "&lt;i&gt;" in out
    assert "'=1+1" in out
    assert "http" not in out.split("plotly.js")[0][:2000]  # no external stylesheet or script links


def test_confusion_matrix_counts_and_escaped_names():
    fig = plots.confusion_matrix([[5, 1], [2, 7]], ["<b>neg</b>", "pos"], title="Test split")
    heat = fig.data[0]
    assert np.asarray(heat.z).tolist() == [[5, 1], [2, 7]]
    assert list(heat.x) == ["&lt;b&gt;neg&lt;/b&gt;", "pos"]
    assert fig.layout.yaxis.autorange == "reversed"  # first true class on top
    with pytest.raises(ValueError, match="does not match"):
        plots.confusion_matrix([[1, 2]], ["a", "b"])
