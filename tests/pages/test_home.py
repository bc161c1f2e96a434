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
