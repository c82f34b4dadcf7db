# With RLIMIT_MEMLOCK 0 and no CAP_IPC_LOCK: EPERM.
setrlimit memlock 0
a = mmap 0 1p rw private|anonymous
mlock $a 1p                => EPERM
