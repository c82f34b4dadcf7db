a = mmap 0 2p rw private|anonymous
mlockall current
munlockall
