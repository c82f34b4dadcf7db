setrlimit as 1m
mmap 0 4m rw private|anonymous          => ENOMEM
