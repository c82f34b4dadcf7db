a = mmap 0 3p rw private|anonymous
write $a 1p 0x11
write $a+1p 1p 0x22
write $a+2p 1p 0x33
b = mremap $a 3p 6p maymove
read $b+1p-1 2
read $b+2p 3
read $b+3p 3
