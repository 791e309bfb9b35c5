#!/usr/bin/env python3
"""Minimal `engine analyze` client (stdlib only): start the server, send a query, print the answer.

Usage: python3 scripts/analyze_client.py [ENGINE] [ANALYZE ARGS...]
e.g.   python3 scripts/analyze_client.py target/release/engine --weights net.safetensors --device cpu
"""
import json
import subprocess
import sys

engine = sys.argv[1] if len(sys.argv) > 1 else "target/release/engine"
server = subprocess.Popen([engine, "analyze", *sys.argv[2:]],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, encoding="utf-8")
# 4 players, 3 cards, hearts trump. Seat 1 led K♠, seat 2 played 4♠; seat 3 (bid 1, no spades)
# holds Q♥ 2♣ 9♦. Other hands are given by their sizes only.
query = {"id": "example", "player": 3, "dealer": 0, "trump": 1, "cards_dealt": 3,
         "hands": [3, 2, 2, [23, 26, 46]], "bids": [0, 0, 1, 1],
         "current_trick": {"leader": 1, "cards": [[1, 11], [2, 2]]}, "sims": 200}
server.stdin.write(json.dumps(query) + "\n")
server.stdin.flush()
print(json.dumps(json.loads(server.stdout.readline()), indent=2, ensure_ascii=False))
server.stdin.close()  # EOF: the server answers what is in flight and exits 0
sys.exit(server.wait())
