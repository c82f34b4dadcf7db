a = mmap 0 2p rw shared|anonymous
write $a 2p 0x5a
b = mremap $a 0 2p maymove  => ok
write $b 1 0x5b
read $a 2
maps
