a = mmap 0 2p rw private|anonymous
write $a 2p 0x44
r = mmap 0 8p none private|anonymous
munmap $r+2p 4p
b = mremap $a 2p 2p maymove|fixed $r+3p  => ok
read $b 2
maps
