a = mmap 0 2p rw private|anonymous
mremap $a 2p 0x800000000000 maymove
mremap $a 2p -1 maymove
