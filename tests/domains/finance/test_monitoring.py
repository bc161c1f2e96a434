"""Population stability of a scored batch against the training data."""

from lucid.domains.finance.monitoring import PSI_MIN_ROWS, psi_verdict


def test_psi_is_small_for_similar_data_and_large_for_a_shift(service, german, applicants):
    same = service.stability(german, service.score(german, applicants))[0]
    assert same.iloc[0]["variable"] == "score (PD)"
    shifted_rows = applicants.assign(
        duration_in_month=applicants["duration_in_month"] * 3,
        status_of_existing_checking_account="no checking account",
    )
    table, verdict = service.stability(german, service.score(german, shifted_rows))
    psi = table.set_index("variable")["psi"]
    assert psi["duration_in_month"] > 0.25 and psi["status_of_existing_checking_account"] > 0.25
    assert same.set_index("variable")["psi"]["duration_in_month"] < 0.25
    assert verdict.startswith("Major shift") and "duration_in_month" in verdict


def test_small_batches_carry_a_caveat_in_the_verdict(service, german, applicants):
    table, verdict = service.stability(german, service.score(german, applicants))
    assert len(applicants) < PSI_MIN_ROWS and "noisy" in verdict
    assert "noisy" not in psi_verdict(table, rows=PSI_MIN_ROWS)
