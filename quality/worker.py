"""``python -m quality.worker``: scores clips named on stdin, one JSON request per line, one JSON record per
line on stdout, until stdin closes (so it ends with the process that started it).

It runs at a lower CPU priority than its parent: on a GPU worker the thread that feeds the GPU and the mp4
encoder come first, and scoring takes what is left.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys

from quality.score_clip import score_video

NICENESS = 10


def main() -> None:
    replies = sys.stdout
    sys.stdout = sys.stderr  # nothing a library prints may corrupt the replies
    with contextlib.suppress(OSError):
        os.nice(NICENESS)
    for line in sys.stdin:
        request = json.loads(line)
        record = score_video(request["video"], request.get("reference"), request.get("boundaries"))
        replies.write(json.dumps(record) + "\n")
        replies.flush()


if __name__ == "__main__":
    main()
