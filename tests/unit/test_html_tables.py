"""nrf.reporting.format.to_html: the pages every table and the claims page are shown as."""

import pandas as pd

from nrf.reporting.format import to_html


def test_sentence_columns_align_left_and_number_columns_right():
    shown = pd.DataFrame({"Claim": ["NRF above the baselines", "Transfer above scratch"],
                          "r": [0.449, 0.412],
                          "Why": ["the default's scratch NRF stops at its 200-step cap, not at early stopping", ""]})
    page = to_html(shown, title="t", note="a **bold** note")
    assert "td:nth-child(3),table.nrf-table th:nth-child(3){text-align:left}" in page  # the sentences
    assert "nth-child(2)" not in page  # numbers keep the right alignment
    assert "<b>bold</b>" in page and "<td>0.449</td>" in page


def test_short_text_columns_stay_right_aligned():
    page = to_html(pd.DataFrame({"method": ["NRF", "fWRF"], "r": [0.4, 0.3]}), title="t", note="")
    assert "nth-child" not in page
