a = mmap 0 2p rw shared|anonymous
write $a 2p 0x66
b = mremap $a 2p 4p maymove
read $b+1p 2
read $b+2p 2
