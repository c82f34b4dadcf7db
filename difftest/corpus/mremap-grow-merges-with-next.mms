# Growing in place up to a compatible VMA.
r = mmap 0 6p rw private|anonymous
munmap $r+2p 2p
b = mremap $r 2p 4p 0
maps
