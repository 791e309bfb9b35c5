"""The page of `engine serve` in a real browser: headless Chromium driven by Selenium plays a whole round by
clicks and keys, then a full game of five rounds, and checks what the page shows against the server's API at every
turn of the person's.

    python -m scripts.serve_browser URL SCREENSHOT_DIR

URL is a running `engine serve` (tests/serve_browser.rs starts one). Chromium and chromedriver are the
system's (Debian: `apt-get install chromium chromium-driver`; CHROMIUM and CHROMEDRIVER override their
paths); nothing is downloaded. Screenshots of each stage are written to SCREENSHOT_DIR.
"""

import json
import os
import sys
import urllib.request
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

# Longest wait for the page to reach a state (engine moves are searches on a CPU: fast, but CI is slow).
TIMEOUT_S = 120
ME = 0


def api(base: str, path: str) -> tuple[str, str]:
    with urllib.request.urlopen(base + path) as answer:
        return answer.read().decode(), answer.headers.get("Content-Type", "")


def view(base: str, game_id: str) -> dict:
    return json.loads(api(base, f"api/games/{game_id}")[0])


def browser() -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        options.add_argument(flag)
    service = Service(executable_path=os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
    return webdriver.Chrome(options=options, service=service)


class Page:
    def __init__(self, driver: webdriver.Chrome, base: str, shots: Path) -> None:
        self.driver, self.base, self.shots = driver, base, shots
        self.wait = WebDriverWait(driver, TIMEOUT_S)

    def find(self, css: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def finds(self, css: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def game_data(self, key: str) -> str:
        return self.find("#game").get_attribute(f"data-{key}") or ""

    def shot(self, name: str) -> None:
        self.driver.save_screenshot(str(self.shots / f"{name}.png"))

    def game_id(self) -> str:
        return self.driver.execute_script("return location.hash.slice(1)")

    def settled(self) -> bool:
        """The person is to act, or the round is over, with no request in flight."""
        if self.find("#game").get_attribute("hidden") is not None or self.game_data("busy") != "0":
            return False
        return self.game_data("to-act") == str(ME) or self.game_data("phase") == "over"

    def wait_settled(self) -> dict:
        self.wait.until(lambda _: self.settled())
        return view(self.base, self.game_id())

    def check_against(self, v: dict) -> None:
        """What the page shows is the server's view of the game."""
        assert not self.find("#setup").is_displayed()
        shown = [int(c.get_attribute("data-card")) for c in self.finds("#hand .card")]
        assert shown == v["hand"], (shown, v["hand"])
        for seat in range(v["settings"]["players"]):
            box = self.find(f'.seat[data-seat="{seat}"]')
            bid = v["bids"][seat]
            assert box.find_element(By.CSS_SELECTOR, ".bid-value").text == ("–" if bid is None else str(bid))
            assert box.find_element(By.CSS_SELECTOR, ".won").text == str(v["tricks_won"][seat])
            assert box.find_element(By.CSS_SELECTOR, ".cards-left").text == str(v["hand_sizes"][seat])
            assert box.find_element(By.CSS_SELECTOR, ".total").text == str(v["totals"][seat])
        trick = v["current_trick"]["cards"] or (v["last_trick"] or {"cards": []})["cards"]
        played = [int(p.get_attribute("data-seat")) for p in self.finds("#trick .played")]
        assert played == [seat for seat, _ in trick], (played, trick)
        totals = [int(td.text) for td in self.finds("#scores tr.totals td[data-seat]")]
        assert totals == v["totals"], (totals, v["totals"])
        legal = sorted(int(c.get_attribute("data-card")) for c in self.finds("#hand .card.legal"))
        if v["phase"] == "play" and v["to_act"] == ME:
            assert legal == v["legal_actions"], (legal, v["legal_actions"])
        if v["last_engine_move"]:
            assert not self.find("#reasoning-panel").get_attribute("hidden")
            rows = self.finds("#reasoning tbody tr")
            assert len(rows) == len(v["last_engine_move"]["analysis"]["moves"])


def deal(page: Page, mode: str, cards: str, pace: str) -> None:
    """Fills in the setup (4 players, the person in seat ME, a quick engine) and deals."""
    page.wait.until(lambda _: page.find("#setup").is_displayed())
    Select(page.find("#players")).select_by_value("4")
    Select(page.find("#mode")).select_by_value(mode)
    Select(page.find("#cards")).select_by_value(cards)
    Select(page.find("#seat")).select_by_value(str(ME))
    Select(page.find("#strength")).select_by_value("custom")
    for field, value in (("#dets", "1"), ("#sims", "12")):
        box = page.find(field)
        box.clear()
        box.send_keys(value)
    Select(page.find("#pace")).select_by_value(pace)
    page.shot(f"01-setup-{mode}")
    page.find("#start").click()


def play_to_the_end_of_the_round(page: Page) -> dict:
    """Clicks the first legal bid and the last legal card at each of the person's turns; returns the view at the end."""
    while True:
        v = page.wait_settled()
        page.check_against(v)
        if v["phase"] == "over":
            return v
        if v["phase"] == "bid":
            page.finds("#bids .bid.legal")[0].click()
        else:
            page.finds("#hand .card.legal")[-1].click()


def play_round(page: Page) -> None:
    """One round, with an illegal bid, a hint, a reload and a card played by the keys; then its record."""
    driver = page.driver
    deal(page, "round", "3", "250")
    v = page.wait_settled()
    page.check_against(v)
    assert v["phase"] == "bid" and v["to_act"] == ME, v
    body = page.find("body")
    # An illegal bid by key: the server's reason is shown and nothing changes.
    body.send_keys("9")
    page.wait.until(lambda _: page.find("#message").is_displayed())
    message = page.find("#message").text
    assert "bid 0 to 3" in message, message
    assert view(page.base, page.game_id()) == v
    page.shot("02-illegal-bid")

    page.find("#hint-button").click()
    page.wait.until(lambda _: page.find("#hint-panel").is_displayed())
    hinted = sorted(int(r.get_attribute("data-action")) for r in page.finds("#hint tbody tr"))
    assert hinted == v["legal_actions"], (hinted, v["legal_actions"])
    page.shot("03-hint")
    page.finds("#bids .bid.legal")[0].click()

    reloaded = False
    by_keys = True
    while True:
        v = page.wait_settled()
        page.check_against(v)
        if v["phase"] == "over":
            break
        assert v["phase"] == "play", v
        assert not page.find("#message").is_displayed(), page.find("#message").text
        if not reloaded and v["last_engine_move"]:
            page.shot("04-play")
            # A reload resumes the same game, as it stood.
            game_id = page.game_id()
            driver.refresh()
            v = page.wait_settled()
            assert page.game_id() == game_id
            page.check_against(v)
            reloaded = True
        if by_keys:
            # The first legal card by the arrow keys and Enter.
            body = page.find("body")
            for _ in range(v["hand"].index(v["legal_actions"][0])):
                body.send_keys(Keys.ARROW_RIGHT)
            body.send_keys(Keys.ENTER)
            by_keys = False
        else:
            page.finds("#hand .card.legal")[-1].click()
    assert reloaded, "the person played a card after an engine's"
    page.shot("05-round-over")

    assert v["game_over"], v
    status = page.find("#status").text
    assert status.startswith("Game over"), status
    link = page.find("#download")
    assert link.is_displayed()
    record, content_type = api(page.base, link.get_attribute("href")[len(page.base) :])
    assert content_type == "application/x-ndjson", content_type
    decisions = [json.loads(line) for line in record.splitlines()]
    assert len(decisions) == 4 + 4 * 3, len(decisions)
    assert {d["id"]["by"] for d in decisions} == {"person", "engine"}

    # "New game" leaves it; the setup is back.
    page.find("#new-game").click()
    page.wait.until(lambda _: page.find("#setup").is_displayed())


def play_full_game(page: Page) -> None:
    """A full game of 1-card rounds (one, then one per player: 5), the next round dealt by the button or the N key."""
    deal(page, "game", "1", "0")
    finished = 0
    while True:
        v = play_to_the_end_of_the_round(page)
        finished += 1
        assert len(page.finds("#scores tbody tr[data-round]")) == finished
        if v["game_over"]:
            break
        assert not page.find("#download").is_displayed()
        if finished % 2:
            page.find("body").send_keys("n")
        else:
            page.find("#next-round").click()
        page.wait.until(lambda _: page.game_data("phase") != "over")
    assert finished == v["rounds"] == 5, (finished, v["rounds"])
    assert [r["cards"] for r in v["scores"]] == [1] * 5
    assert page.find("#status").text.startswith("Game over")
    assert page.find("#download").is_displayed()
    page.shot("06-full-game-over")


def main() -> None:
    base, shots = sys.argv[1], Path(sys.argv[2])
    shots.mkdir(parents=True, exist_ok=True)
    for old in shots.glob("*.png"):
        old.unlink()
    driver = browser()
    try:
        page = Page(driver, base, shots)
        driver.get(base)
        try:
            play_round(page)
            play_full_game(page)
        except BaseException:
            page.shot("failure")
            raise
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        # The one illegal bid is answered 409: the console logs that failed request, nothing else.
        assert all("409" in e["message"] for e in errors), errors
    finally:
        driver.quit()
    print(f"played a round and a full game in the browser; screenshots in {shots}")


if __name__ == "__main__":
    main()
