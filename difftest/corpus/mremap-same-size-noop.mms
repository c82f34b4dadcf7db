a = mmap 0 2p rw private|anonymous
b = mremap $a 2p 2p 0      => ok
maps
