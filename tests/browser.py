"""Headless Chromium for the browser tests (tests/test_docs.py, tests/test_jupyterlab.py): Debian's package, installed
by `make browser`, driven by selenium through the system chromedriver (nothing is downloaded)."""
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM, CHROMEDRIVER = Path('/usr/bin/chromium'), Path('/usr/bin/chromedriver')
FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-dev-shm-usage',
         '--disable-background-networking', '--disable-component-update', '--disable-sync', '--window-size=1400,1000']


def require_browser(request):
    "Skip the test (one line saying how to enable it) when Chromium is missing; fail instead under --require-browser."
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        why = (f'{CHROMIUM} or {CHROMEDRIVER} is missing: `make browser` '
               '(root: apt-get install chromium chromium-driver) enables it')
        if request.config.getoption('--require-browser'): pytest.fail(why)
        pytest.skip(why)
    try: import selenium  # noqa: F401
    except ImportError: pytest.fail('selenium is missing: run `make setup` (it is in settings.ini dev_requirements)')


@contextmanager
def chromium(profile: Path, flags=()):
    "Headless Chromium with a fresh profile, its console log kept, driven through the system chromedriver."
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in FLAGS + list(flags) + [f'--user-data-dir={profile}']: opts.add_argument(flag)
    opts.set_capability('goog:loggingPrefs', {'browser': 'ALL'})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=opts)
    try: yield driver
    finally: driver.quit()
