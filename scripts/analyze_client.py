"""Minimal `engine analyze` client (stdlib only): start the server, send a query, print the answer.

Usage: python3 -m scripts.analyze_client [ENGINE] [ANALYZE ARGS...]
e.g.   python3 -m scripts.analyze_client target/release/engine --weights net.safetensors --device cpu
"""
import json
import subprocess
import sys

# 4 players, 3 cards, hearts trump. Seat 1 led K♠, seat 2 played 4♠; seat 3 (bid 1, no spades)
# holds Q♥ 2♣ 9♦. Other hands are given by their sizes only.
QUERY = {"id": "example", "player": 3, "dealer": 0, "trump": 1, "cards_dealt": 3,
         "hands": [3, 2, 2, [23, 26, 46]], "bids": [0, 0, 1, 1],
         "current_trick": {"leader": 1, "cards": [[1, 11], [2, 2]]}, "sims": 200}


def main(argv: list[str]) -> int:
    engine = argv[0] if argv else "target/release/engine"
    server = subprocess.Popen([engine, "analyze", *argv[1:]],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, encoding="utf-8")
    assert server.stdin is not None and server.stdout is not None
    server.stdin.write(json.dumps(QUERY) + "\n")
    server.stdin.flush()
    print(json.dumps(json.loads(server.stdout.readline()), indent=2, ensure_ascii=False))
    server.stdin.close()  # EOF: the server answers what is in flight and exits 0
    return server.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
