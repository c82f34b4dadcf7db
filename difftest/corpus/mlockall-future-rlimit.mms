setrlimit memlock 4p
mlockall future
mmap 0 8p rw private|anonymous
munlockall
