from lucid.ui.catalogue import available_pages, domain_pages


def test_home_shows_device_and_versions(app_test):
    at = app_test()
    assert not at.exception
    assert at.title[0].value == "Lucid"
    assert at.metric[0].label == "Compute device"
    assert at.metric[0].value in {"CPU", "GPU", "Apple GPU"}
    versions = at.dataframe[0].value
    assert "torch" in versions["library"].tolist()
    assert all(v != "not installed" for v in versions["version"])


def test_only_existing_pages_are_listed():
    for page in available_pages():
        assert page.exists
    assert all(p in domain_pages() for p in available_pages())


def test_home_starts_with_what_to_do_and_keeps_versions_in_an_expander(app_test):
    at = app_test()
    assert not at.exception
    headings = [h.value for h in at.subheader]
    assert headings[0] == "Start here" and headings.index("Start here") < headings.index("Pages")
    assert "Look at the demo first" in at.markdown[1].value
    installation = [e for e in at.expander if e.label.startswith("This installation")]
    assert len(installation) == 1
    assert installation[0].metric[0].label == "Compute device"
    assert "torch" in installation[0].dataframe[0].value["library"].tolist()
