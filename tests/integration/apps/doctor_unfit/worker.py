"""A worker over its Standard-1X quota (R14) that ignores SIGTERM (R12)."""

import signal
import time

signal.signal(signal.SIGTERM, signal.SIG_IGN)
ballast = bytearray(640 * 2**20)
for page in range(0, len(ballast), 4096):
    ballast[page] = 1  # touched: resident, as R14 counts it
print("worker: holding 640 MB", flush=True)
while True:
    time.sleep(1)
