# Moving the middle of a VMA splits it.
a = mmap 0 6p rw private|anonymous
write $a 6p 0x77
b = mremap $a+2p 2p 2p maymove|fixed $a+10p
maps
