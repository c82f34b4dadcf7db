# Without CAP_IPC_LOCK, locking more than RLIMIT_MEMLOCK fails.
setrlimit memlock 2p
a = mmap 0 4p rw private|anonymous
mlock $a 4p                => ENOMEM
mlock $a 1p                => ok
