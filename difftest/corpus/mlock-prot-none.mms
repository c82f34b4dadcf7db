a = mmap 0 2p none private|anonymous
mlock $a 2p
smaps
