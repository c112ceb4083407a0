# The disk's floor for one durable file: write 1 KB, fsync, rename, fsync the
# folder — what any pickup-folder queue must pay per message.  Prints files/s.
#   spool-probe.py DIR N
import os, sys, time
d, n = sys.argv[1], int(sys.argv[2])
data = b"x" * 1024
for sub in ("tmp", "new"):
    os.makedirs(os.path.join(d, sub), exist_ok=True)
dfd = os.open(os.path.join(d, "new"), os.O_RDONLY | os.O_DIRECTORY)
base = "%d-%d" % (os.getpid(), time.monotonic_ns())
t = time.perf_counter()
for i in range(n):
    p = "%s/tmp/%s-%d" % (d, base, i)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, data)
    os.fsync(fd)
    os.close(fd)
    os.rename(p, "%s/new/%s-%d" % (d, base, i))
    os.fsync(dfd)
print("%.1f" % (n / (time.perf_counter() - t)))
