a = mmap 0 2p rw private|anonymous
mlock $a 2p
munmap $a+2p 2p
b = mremap $a 2p 4p maymove
smaps
