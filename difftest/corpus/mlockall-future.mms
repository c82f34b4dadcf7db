mlockall future            => ok
a = mmap 0 2p rw private|anonymous
smaps
munlockall                 => ok
b = mmap 0 2p rw private|anonymous
smaps
