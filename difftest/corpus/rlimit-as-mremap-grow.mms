a = mmap 0 2p rw private|anonymous
setrlimit as 1m
mremap $a 2p 4m maymove    => ENOMEM
