a = mmap 0 3p rw private|anonymous
write $a 3p 0x1
munmap $a 3p
b = mmap $a 3p rw private|anonymous|fixed_noreplace  => ok
read $b 3
