# MAP_LOCKED beyond RLIMIT_MEMLOCK without CAP_IPC_LOCK.
setrlimit memlock 1p
mmap 0 4p rw private|anonymous|locked    => EAGAIN
