a = mmap 0 2p rw private|anonymous
b = mmap $a 2p rw private|anonymous
maps
