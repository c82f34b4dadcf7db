# Moving the middle of a VMA splits it.
r = mmap 0 16p none private|anonymous
a = mmap $r 6p rw private|anonymous|fixed
write $a 6p 0x77
b = mremap $a+2p 2p 2p maymove|fixed $r+10p
maps
