a = mmap 0 2p rw private|anonymous
write $a 2p 0x45
t = mmap 0 4p r private|anonymous
b = mremap $a 2p 2p maymove|fixed $t+1p  => ok
maps
read $t 1
read $t+1p 1
