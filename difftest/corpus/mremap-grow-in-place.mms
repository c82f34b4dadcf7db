a = mmap 0 4p rw private|anonymous
munmap $a+2p 2p
b = mremap $a 2p 4p 0
write $a+3p 1 0x1
maps
