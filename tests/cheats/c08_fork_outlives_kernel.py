"""Forks a process that leaves the kernel's process group (``setsid`` and a double fork) and
would outlive the kernel, e.g. to rewrite files after the grader has read them or to wait for the
next submission. The grader, subreaper of its kernels, finds it after the kernel ends, kills it
and names it."""

CELLS = [r'''
import os
import time

child = os.fork()
if child == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(300)
    os._exit(0)
os.waitpid(child, 0)
''']
EXPECT = {
    "review": ["left processes running after the kernel ended (killed): pid ",
               "forks the kernel (seen while it ran)",
               "starts processes or threads, sends signals or ends the kernel: os.fork"],
}
