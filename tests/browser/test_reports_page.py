"""The reports page (issue 19): each picture rendered in the browser, with its text
alternative (role=img labelled by its <title> and <desc>) and a table behind it."""

from __future__ import annotations

from browser_helpers import log_in, shot

PICTURES = """() => [...document.querySelectorAll('figure.report-figure svg')].map(svg => {
  const ids = (svg.getAttribute('aria-labelledby') || '').split(' ').filter(Boolean);
  const box = svg.getBoundingClientRect();
  return {role: svg.getAttribute('role'),
          label: ids.map(id => (document.getElementById(id) || {}).textContent || '').join(' | '),
          title: (svg.querySelector('title') || {}).textContent || '',
          desc: (svg.querySelector('desc') || {}).textContent || '',
          width: box.width, height: box.height,
          drawn: svg.querySelectorAll('path, use, rect').length,
          links: [...svg.querySelectorAll('a')].filter(a => a.getAttribute('tabindex') !== '-1')
            .map(a => a.textContent.trim()),
          table: !!svg.closest('section').querySelector('table caption')};
})"""


def test_the_manager_sees_every_picture_with_its_words_and_table(page, live_server):
    """Six pictures drawn (completeness and its patients' matrix, capacity and its fill over
    time, inventory, requests), each named for a screen reader by its title and description
    (which say the numbers), each with a captioned table; the matrix's patients are links;
    the CSV links answer CSV; the page is saved as a screenshot."""
    log_in(page, "demo-manager")
    # Six pictures drawn on the server: on a busy machine this page takes longer than most.
    page.goto("/reports", timeout=90_000)
    pictures = page.evaluate(PICTURES)
    assert [p["title"] for p in pictures] == [
        "Cohort completeness",
        "Cohort completeness per patient",
        "Freezer capacity",
        "Freezer fill over time",
        "Inventory over time",
        "Tubes shipped per sub-study",
    ]
    for picture in pictures:
        # The matrix holds links (each patient's row): a group a reader can enter.
        assert picture["role"] == ("group" if picture["links"] else "img")
        assert picture["label"] == f"{picture['title']} | {picture['desc']}"
        assert any(ch.isdigit() for ch in picture["desc"]), picture["title"]
        assert picture["width"] > 100 and picture["height"] > 100 and picture["drawn"] > 5
        assert picture["table"]
    assert "received" in pictures[0]["desc"] and "positions used" in pictures[2]["desc"]
    assert pictures[1]["links"] and all(p.startswith("IF21-") for p in pictures[1]["links"])
    shot(page, "reports-manager")
    link = page.get_by_role("link", name="CSV: every patient and timepoint")
    answer = page.request.get(link.get_attribute("href"))
    assert answer.status == 200 and answer.headers["content-type"].startswith("text/csv")
    assert answer.text().startswith("study_id,site,country,risk_group,timepoint")
    page.set_viewport_size({"width": 360, "height": 800})
    page.goto("/reports?risk_group=HR", timeout=90_000)
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    shot(page, "reports-manager-360")
