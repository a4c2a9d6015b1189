set terminal pngcairo noenhanced size 960,600
set output 'dir24_8-prefixes.png'
set title 'sluice-bench dir24_8: ns/packet against prefixes'
set xlabel 'prefixes'
set ylabel 'ns/packet (median, bars q1-q3)'
set key below
set grid
set yrange [0:*]
$series0 << EOD
1000000 30 30 30
EOD
$series1 << EOD
1000000 126 118 127
EOD
$series2 << EOD
1000000 31 29 33
EOD
$series3 << EOD
1000000 122 115 125
EOD
$series4 << EOD
1000000 30 30 31
EOD
$series5 << EOD
1000000 109 109 111
EOD
$floor << EOD
1000000 27
EOD
plot $series0 using 1:2:3:4 with yerrorlines lw 2 title 'DIR-24-8 lookup, hit, tbl8', \
     $series1 using 1:2:3:4 with yerrorlines lw 2 title 'kernel LPM trie lookup, hit, tbl8', \
     $series2 using 1:2:3:4 with yerrorlines lw 2 title 'DIR-24-8 lookup, hit, tbl24', \
     $series3 using 1:2:3:4 with yerrorlines lw 2 title 'kernel LPM trie lookup, hit, tbl24', \
     $series4 using 1:2:3:4 with yerrorlines lw 2 title 'DIR-24-8 lookup, miss', \
     $series5 using 1:2:3:4 with yerrorlines lw 2 title 'kernel LPM trie lookup, miss', \
     $floor using 1:2 with lines dt 2 lc 'black' title 'floor: empty XDP_DROP'
